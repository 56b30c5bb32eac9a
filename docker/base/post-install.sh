#!/bin/sh
# Runs inside the debootstrapped root (chroot) before it is imported.
set -eu
# The non-root user sandboxes run as when the image has one.
useradd --create-home --uid 1000 --shell /bin/bash mend
mkdir -p /repo && chown mend:mend /repo
git config --system --add safe.directory '*'
git config --system user.name mend
git config --system user.email mend@localhost
# Pip must not reach for a network the sandbox does not have.
printf '[global]\ndisable-pip-version-check = true\nbreak-system-packages = true\n' > /etc/pip.conf
apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /tmp/* /var/tmp/*
