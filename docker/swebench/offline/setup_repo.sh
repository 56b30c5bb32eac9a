#!/bin/bash
# The repository at its base commit, set up as the official images have it.
set -euxo pipefail
cd /testbed
git config --global --add safe.directory /testbed
git config core.bare false
git reset --hard {base_commit}
git reflog expire --expire=now --all
# What `chmod -R 777 /testbed` does, touching only what is not 777 yet: .git arrives 777
# from the build context, and a mode change would copy its pack into this layer.
find /testbed ! -type l ! -perm 777 -exec chmod 777 {} +
source /opt/miniconda3/bin/activate
conda activate testbed
echo "Current environment: $CONDA_DEFAULT_ENV"
{pre_install}
{install}
git config --global user.email setup@swebench.config
git config --global user.name SWE-bench
git commit --allow-empty -am SWE-bench
