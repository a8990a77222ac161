"""Compare representations: layers with each other and with brain or behavioural targets (issue 15).

The computational core of the fourth branch, numpy arrays in and out, no file I/O:

- ``audioprobe.compare.rsa``: representational dissimilarity matrices and their comparison (rsatoolbox),
  bootstrap confidence intervals over stimuli and noise ceilings;
- ``audioprobe.compare.cka``: linear centred kernel alignment, biased and unbiased;
- ``audioprobe.compare.encoding``: cross-validated ridge encoding models with noise-corrected R^2
  (Tuckute et al. 2023's protocol by default; himalaya).

The submodules are imported one by one (``from audioprobe.compare import cka``) so that a rule needing only
CKA does not import rsatoolbox or himalaya.
"""
