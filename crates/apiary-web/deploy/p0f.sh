#!/usr/bin/env bash
# p0f (passive OS fingerprinting) deploy script for Apiary (template; the server fills in {{SERVER_URL}},
# {{TOKEN}}, {{HPF_HOST}} and {{HPF_PORT}} when it serves GET /deploy/<token>.sh).
#
#   curl -fsSL {{SERVER_URL}}/deploy/{{TOKEN}}.sh | sudo bash
#
# Installs p0f from the distribution (apt: p0f; dnf/yum: p0f), runs it on the default
# interface writing /var/log/p0f.log (-o), and runs apiary-sensor's p0f forwarder on that
# log: lines are published on the hpfeeds channel p0f.log.
#
# TESTED WITH: Debian 12 (p0f 3.09b), run as the one-line command in a network namespace by
# crates/apiary-server/tests/p0f_netns.rs (no systemd there: the nohup path).
# Idempotent: the registration is kept in /etc/apiary-sensor/p0f-registration.json and a
# second run reuses it (the server also answers a second registration from the same host
# and token with the same sensor).
set -euo pipefail
SERVER_URL="{{SERVER_URL}}"; TOKEN="{{TOKEN}}"; HPF_HOST="{{HPF_HOST}}"; HPF_PORT="{{HPF_PORT}}"
HONEYPOT="p0f"
# @forwarder-common@ (say, die, pkg_install, register, install_sensor_forwarder, ...)
# --- this script runs apiary-sensor with the p0f forwarder (tails /var/log/p0f.log) ---

# Only when something is missing: a re-run (or an offline host that has them) needs no repository.
if ! have p0f || ! have curl; then pkg_install p0f curl ca-certificates -- p0f curl; fi
IFACE=$(ip route show default 2>/dev/null | awk '{print $5; exit}'); IFACE=${IFACE:-eth0}
# Leave out the sensor's own traffic to the Apiary server (deploy downloads, registration,
# hpfeeds): without this p0f files the sensor host and the server as fingerprinted hosts.
# Addresses, not names: a name p0f can't resolve at start would make its filter fail.
FILTER=""
for h in "$HPF_HOST" "$(printf '%s' "$SERVER_URL" | sed -E 's#^[a-zA-Z]+://(\[([^]]*)\]|([^/:]*)).*#\2\3#')"; do
    for a in $(getent ahosts "$h" 2>/dev/null | awk '{print $1}' | sort -u); do
        case " $FILTER " in *" host $a "*) ;; *) FILTER="${FILTER:+$FILTER and }not host $a" ;; esac
    done
done
say "p0f filter: ${FILTER:-none}"
touch /var/log/p0f.log
if has_systemd; then
    printf '[Unit]\nDescription=p0f for Apiary\nAfter=network-online.target\n[Service]\nExecStart=%s -i %s -o /var/log/p0f.log%s\nRestart=always\n[Install]\nWantedBy=multi-user.target\n' \
        "$(command -v p0f)" "$IFACE" "${FILTER:+ \"$FILTER\"}" > /etc/systemd/system/apiary-p0f.service
    systemctl daemon-reload; systemctl enable apiary-p0f.service >/dev/null 2>&1 || true; systemctl restart apiary-p0f.service
    say "p0f running on $IFACE (apiary-p0f.service)"
else
    if start_in_background p0f /var/log/p0f-foreground.log "$(command -v p0f)" -i "$IFACE" -o /var/log/p0f.log ${FILTER:+"$FILTER"}; then
        say "no systemd: p0f started in the background on $IFACE (pid $(cat "$STATE/apiary-p0f.pid"))"
    fi
fi
register
install_sensor_forwarder p0f /var/log/p0f.log
say "done"
