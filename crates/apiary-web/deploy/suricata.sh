#!/usr/bin/env bash
# Suricata (IDS) deploy script for Apiary (template; the server fills in {{SERVER_URL}},
# {{TOKEN}}, {{HPF_HOST}} and {{HPF_PORT}} when it serves GET /deploy/<token>.sh).
#
#   curl -fsSL {{SERVER_URL}}/deploy/{{TOKEN}}.sh | sudo bash
#
# Installs Suricata from the distribution (apt: suricata; dnf/yum: suricata, on RHEL from
# EPEL which must already be enabled), makes sure eve.json logging is on (the packaged
# default), starts it, and runs apiary-sensor's Suricata forwarder on eve.json: alerts are
# published on the hpfeeds channel suricata.eve.
#
# TESTED WITH: Debian 12, run as the one-line command in a network namespace by
# crates/apiary-server/tests/ids_netns.rs (no systemd there: the nohup path). Debian here
# has no Suricata package: the test stands in for it with a process of that name and writes
# the log lines itself, in the documented format.
# Idempotent: the registration is kept in /etc/apiary-sensor/suricata-registration.json and a
# second run reuses it (the server also answers a second registration from the same host
# and token with the same sensor).
set -euo pipefail
SERVER_URL="{{SERVER_URL}}"; TOKEN="{{TOKEN}}"; HPF_HOST="{{HPF_HOST}}"; HPF_PORT="{{HPF_PORT}}"
HONEYPOT="suricata"
# @forwarder-common@ (say, die, pkg_install, register, install_sensor_forwarder, ...)
# --- this script runs apiary-sensor with the suricata forwarder (tails /var/log/suricata/eve.json) ---

# Only when something is missing: a re-run (or an offline host that has them) needs no repository.
if ! have suricata || ! have curl; then pkg_install suricata curl ca-certificates -- suricata curl; fi
grep -q 'eve-log' /etc/suricata/suricata.yaml 2>/dev/null || say "WARNING: no eve-log output in /etc/suricata/suricata.yaml; enable it"
# eve.json must exist for the forwarder to open it; Suricata appends to it.
install -d -m 0755 /var/log/suricata; [ -e /var/log/suricata/eve.json ] || install -m 0640 -g adm /dev/null /var/log/suricata/eve.json 2>/dev/null || touch /var/log/suricata/eve.json
if has_systemd; then systemctl enable --now suricata >/dev/null 2>&1 || systemctl restart suricata || true
else
    IFACE=$(ip route show default 2>/dev/null | awk '{print $5; exit}'); IFACE=${IFACE:-eth0}
    if start_in_background suricata /var/log/suricata-foreground.log "$(command -v suricata)" -c /etc/suricata/suricata.yaml -i "$IFACE"; then
        say "no systemd: suricata started in the background on $IFACE (pid $(cat "$STATE/apiary-suricata.pid"))"
    fi
fi
register
install_sensor_forwarder suricata /var/log/suricata/eve.json
say "done"
