#!/bin/bash
# Build the instance environment with no network: a venv from the base image's Python
# and the requirements installed from /opt/wheels only.
set -euxo pipefail
PY={python_bin}
mkdir -p /opt/miniconda3/bin /opt/miniconda3/envs
cp /opt/mend-setup/activate.sh /opt/miniconda3/bin/activate
$PY -m venv /opt/miniconda3/envs/testbed
# A conda interpreter reached through a symlink still finds its environment; a venv's does
# not (tox-current-env runs .tox/<env>/bin/python -> the env's python -> $PY). So the base
# Python, which the image keeps only for this env, adds the env's packages when run as itself.
BASE_SITE=$($PY -c 'import site; print(site.getsitepackages()[0])')
ENV_SITE=$(/opt/miniconda3/envs/testbed/bin/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
mkdir -p "$BASE_SITE"
echo "import site; site.addsitedir('$ENV_SITE')" > "$BASE_SITE/mend-testbed-env.pth"
# Every later pip call (the spec's install command, the eval script's) stays offline.
printf '[global]\nno-index = true\nfind-links = /opt/wheels\ndisable-pip-version-check = true\n' > /opt/miniconda3/envs/testbed/pip.conf
source /opt/miniconda3/bin/activate
conda activate testbed
# The wheelhouse's current pip first (the venv's own may not do PEP 660 editable installs),
# and wheel, which a conda environment comes with and a venv does not.
python -m pip install --upgrade pip || echo "mend: pip not upgraded; using $(python -m pip --version)"
python -m pip show -q wheel 2>/dev/null || python -m pip install wheel || echo "mend: no wheel in the wheelhouse"
if [ -s /opt/mend-setup/requirements.txt ]; then
    # All at once first; line by line when that fails, so one unbuildable package
    # leaves the others installed (the failures are listed in the build log and the file).
    if ! python -m pip install -r /opt/mend-setup/requirements.txt; then
        while IFS= read -r req; do
            [ -z "$req" ] && continue
            python -m pip install "$req" || echo "$req" >> /opt/mend-setup/install-failures.txt
        done < /opt/mend-setup/requirements.txt
    fi
fi
python --version
# Where this Python's test output differs from the official one's (empty when it does not).
{compat}
