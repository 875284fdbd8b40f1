#!/usr/bin/env bash
# Snort 3 (IDS) deploy script for Apiary (template; the server fills in {{SERVER_URL}},
# {{TOKEN}}, {{HPF_HOST}} and {{HPF_PORT}} when it serves GET /deploy/<token>.sh).
#
#   curl -fsSL {{SERVER_URL}}/deploy/{{TOKEN}}.sh | sudo bash
#
# Installs Snort where the distribution ships it (apt: snort -- Debian/Ubuntu ship Snort 2
# or nothing, depending on the release; dnf/yum: snort3 where a repository provides it) and
# runs apiary-sensor's Snort forwarder on Snort 3's alert_json output, published on the
# hpfeeds channel snort.alert_json. Snort 3 must be configured with
#   alert_json = { file = true }   and   -l /var/log/snort
# (the script does not rewrite snort.lua; it prints what it found).
#
# TESTED WITH: Debian 12, run as the one-line command in a network namespace by
# crates/apiary-server/tests/ids_netns.rs (no systemd there: the nohup path). Debian here
# has no Snort package: the test stands in for it with a process of that name and writes
# the log lines itself, in the documented format.
# Idempotent: the registration is kept in /etc/apiary-sensor/snort-registration.json and a
# second run reuses it (the server also answers a second registration from the same host
# and token with the same sensor).
set -euo pipefail
SERVER_URL="{{SERVER_URL}}"; TOKEN="{{TOKEN}}"; HPF_HOST="{{HPF_HOST}}"; HPF_PORT="{{HPF_PORT}}"
HONEYPOT="snort"
# @forwarder-common@ (say, die, pkg_install, register, install_sensor_forwarder, ...)
# --- this script runs apiary-sensor with the snort forwarder (tails /var/log/snort/alert_json.txt) ---

if ! have snort; then pkg_install snort curl ca-certificates -- snort3 curl || say "WARNING: no snort package here; install Snort 3 yourself"; fi
have snort && say "snort: $(snort -V 2>&1 | grep -m1 -o 'Version [0-9.]*' || echo unknown version)"
install -d /var/log/snort
[ -f /var/log/snort/alert_json.txt ] || touch /var/log/snort/alert_json.txt
if ! have snort; then
    say "WARNING: snort is not installed; the forwarder will publish once Snort 3 writes /var/log/snort/alert_json.txt"
elif [ ! -f /etc/snort/snort.lua ]; then
    say "WARNING: no /etc/snort/snort.lua (Snort 3's configuration); start Snort 3 with alert_json yourself"
elif has_systemd; then
    IFACE=$(ip route show default 2>/dev/null | awk '{print $5; exit}'); IFACE=${IFACE:-eth0}
    printf '[Unit]\nDescription=Snort 3 for Apiary\nAfter=network-online.target\n[Service]\nExecStart=%s -c /etc/snort/snort.lua -i %s -A alert_json -l /var/log/snort\nRestart=always\n[Install]\nWantedBy=multi-user.target\n' \
        "$(command -v snort)" "$IFACE" > /etc/systemd/system/apiary-snort.service
    systemctl daemon-reload; systemctl enable apiary-snort.service >/dev/null 2>&1 || true; systemctl restart apiary-snort.service
    say "snort 3 running on $IFACE (apiary-snort.service, alert_json to /var/log/snort)"
else
    IFACE=$(ip route show default 2>/dev/null | awk '{print $5; exit}'); IFACE=${IFACE:-eth0}
    if start_in_background snort /var/log/snort-foreground.log "$(command -v snort)" -c /etc/snort/snort.lua -i "$IFACE" -A alert_json -l /var/log/snort; then
        say "no systemd: snort 3 started in the background on $IFACE (pid $(cat "$STATE/apiary-snort.pid"), alert_json to /var/log/snort)"
    fi
fi
register
install_sensor_forwarder snort /var/log/snort/alert_json.txt
say "done"
