#!/usr/bin/env bash
# Dionaea deploy script for Apiary (template; the server fills in {{SERVER_URL}},
# {{TOKEN}}, {{HPF_HOST}} and {{HPF_PORT}} when it serves GET /deploy/<token>.sh).
#
#   curl -fsSL {{SERVER_URL}}/deploy/{{TOKEN}}.sh | sudo bash
#
# Dionaea has no package in Debian, Ubuntu or RHEL and nothing installable from PyPI; this
# script does NOT build it. Install Dionaea yourself (upstream source build), enable its
# log_json ihandler, then run this script: it installs apiary-sensor with the Dionaea
# forwarder on the JSON log (DIONAEA_LOG, default /opt/dionaea/var/lib/dionaea/dionaea.json),
# published on the hpfeeds channel dionaea.json and normalized into sessions by the server.
# Dionaea's own hpfeeds ihandler (dionaea.connections etc.) works too; its settings are
# printed at the end.
#
# TESTED WITH: Debian 12, run as the one-line command in a network namespace by
# crates/apiary-server/tests/ids_netns.rs (no systemd there: the nohup path). Debian here
# has no Dionaea package: the test stands in for it with a process of that name and writes
# the log lines itself, in the documented format.
# Idempotent: the registration is kept in /etc/apiary-sensor/dionaea-registration.json and a
# second run reuses it (the server also answers a second registration from the same host
# and token with the same sensor).
set -euo pipefail
SERVER_URL="{{SERVER_URL}}"; TOKEN="{{TOKEN}}"; HPF_HOST="{{HPF_HOST}}"; HPF_PORT="{{HPF_PORT}}"
HONEYPOT="dionaea"
# @forwarder-common@ (say, die, pkg_install, register, install_sensor_forwarder, ...)
# --- this script runs apiary-sensor with the dionaea forwarder (tails ${DIONAEA_LOG}) ---

DIONAEA_LOG=${DIONAEA_LOG:-/opt/dionaea/var/lib/dionaea/dionaea.json}
have curl || pkg_install curl ca-certificates -- curl
[ -e "$DIONAEA_LOG" ] || say "WARNING: $DIONAEA_LOG does not exist yet (is Dionaea installed with log_json?)"
register
install_sensor_forwarder dionaea "$DIONAEA_LOG"
say "for Dionaea's own hpfeeds ihandler use: server=$HPF_HOST port=$HPF_PORT ident=$IDENT secret=<in $ETC/$HONEYPOT-registration.json>"
say "done"
