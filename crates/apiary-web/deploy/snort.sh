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
ETC=/etc/apiary-sensor; STATE=/var/lib/apiary-sensor
say() { printf '[apiary-deploy] %s\n' "$*"; }
die() { printf '[apiary-deploy] ERROR: %s\n' "$*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "run as root (curl ... | sudo bash)"
have() { command -v "$1" >/dev/null 2>&1; }
pkg_install() { # pkg_install APT_PKGS -- RPM_PKGS
    local apt=() rpm=() side=apt
    for p in "$@"; do if [ "$p" = "--" ]; then side=rpm; elif [ $side = apt ]; then apt+=("$p"); else rpm+=("$p"); fi; done
    if have apt-get; then
        DEBIAN_FRONTEND=noninteractive apt-get update -q
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${apt[@]}"
    elif have dnf; then dnf install -y -q "${rpm[@]}"
    elif have yum; then yum install -y -q "${rpm[@]}"
    else die "no apt-get, dnf or yum: install ${apt[*]} yourself"; fi
}
has_systemd() { have systemctl && [ -d /run/systemd/system ]; }
json_field() { sed -n "s/.*\"$2\"[[:space:]]*:[[:space:]]*\"\([^\"]*\)\".*/\1/p" "$1" | head -n1; }
register() { # -> sets IDENT, SECRET
    install -d -m 0750 "$ETC"
    local reg="$ETC/$HONEYPOT-registration.json" h tmp code
    if [ -s "$reg" ] && [ -n "$(json_field "$reg" uuid)" ]; then
        say "already registered as $(json_field "$reg" uuid); not registering again"
    else
        h=$(hostname); tmp=$(mktemp)
        code=$(curl -sS -o "$tmp" -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
            -H "Authorization: Enrollment $TOKEN" \
            -d "{\"name\": \"$h-$HONEYPOT\", \"hostname\": \"$h\", \"deploy_key\": \"$TOKEN\", \"honeypot\": \"$HONEYPOT\"}" \
            "$SERVER_URL/api/sensor/") || code=000
        [ "$code" = 200 ] || [ "$code" = 201 ] || { cat "$tmp" >&2; rm -f "$tmp"; die "registration failed (HTTP $code)"; }
        install -m 0600 "$tmp" "$reg"; rm -f "$tmp"
        say "created sensor: $(json_field "$reg" uuid)"
    fi
    IDENT=$(json_field "$reg" identifier); [ -n "$IDENT" ] || IDENT=$(json_field "$reg" uuid)
    SECRET=$(json_field "$reg" secret); [ -n "$SECRET" ] || die "registration has no secret"
}

# --- apiary-sensor with the snort forwarder (tails /var/log/snort/alert_json.txt) ---
install_sensor_forwarder() { # KIND PATH
    local kind="$1" path="$2" bin=/usr/local/bin/apiary-sensor tmp
    id apiary-sensor >/dev/null 2>&1 || useradd --system --home-dir "$STATE" --shell "$(command -v nologin || echo /sbin/nologin)" apiary-sensor
    install -d -m 0750 -o apiary-sensor "$STATE"
    tmp=$(mktemp)
    curl -fsS "$SERVER_URL/deploy/$TOKEN/apiary-sensor" -o "$tmp" || die "could not download apiary-sensor"
    install -m 0755 "$tmp" "$bin"; rm -f "$tmp"
    # The sensor reads the log as root-started process before dropping privileges only for
    # listening services; forwarders need read access to the log: add the user to adm.
    getent group adm >/dev/null && usermod -a -G adm apiary-sensor || true
    {
        printf '[broker]\nhost = "%s"\nport = %s\nident = "%s"\nsecret = "%s"\n\n' "$HPF_HOST" "$HPF_PORT" "$IDENT" "$SECRET"
        printf '[sensor]\nspool_dir = "%s"\nuser = "apiary-sensor"\n\n' "$STATE/$kind"
        printf '[[forwarder]]\nkind = "%s"\npath = "%s"\n' "$kind" "$path"
    } > "$ETC/$kind-forwarder.toml"
    chmod 0640 "$ETC/$kind-forwarder.toml"
    install -d -m 0750 "$STATE/$kind"
    "$bin" check-config --config "$ETC/$kind-forwarder.toml"
    local unit="apiary-forward-$kind"
    if has_systemd; then
        printf '[Unit]\nDescription=Apiary %s forwarder\nAfter=network-online.target\n[Service]\nExecStart=%s run --config %s\nRestart=always\nRestartSec=5\n[Install]\nWantedBy=multi-user.target\n' \
            "$kind" "$bin" "$ETC/$kind-forwarder.toml" > "/etc/systemd/system/$unit.service"
        systemctl daemon-reload; systemctl enable "$unit.service" >/dev/null 2>&1 || true
        systemctl restart "$unit.service"
        say "systemd unit $unit.service (re)started"
    else
        if [ -f "$STATE/$unit.pid" ] && kill -0 "$(cat "$STATE/$unit.pid")" 2>/dev/null; then kill "$(cat "$STATE/$unit.pid")" || true; sleep 1; fi
        nohup "$bin" run --config "$ETC/$kind-forwarder.toml" >> "/var/log/$unit.log" 2>&1 &
        echo $! > "$STATE/$unit.pid"
        say "no systemd: $unit started in the background (pid $(cat "$STATE/$unit.pid"), log /var/log/$unit.log)"
    fi
}

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
    # Our own pid file, not `pgrep snort`: another Snort on the host must not stop this one.
    install -d -m 0750 "$STATE"
    if [ -f "$STATE/apiary-snort.pid" ] && kill -0 "$(cat "$STATE/apiary-snort.pid")" 2>/dev/null; then
        say "snort already running (pid $(cat "$STATE/apiary-snort.pid"))"
    else
        IFACE=$(ip route show default 2>/dev/null | awk '{print $5; exit}')
        nohup "$(command -v snort)" -c /etc/snort/snort.lua -i "${IFACE:-eth0}" -A alert_json -l /var/log/snort >> /var/log/snort-foreground.log 2>&1 &
        echo $! > "$STATE/apiary-snort.pid"
        say "no systemd: snort 3 started in the background on ${IFACE:-eth0} (pid $(cat "$STATE/apiary-snort.pid"), alert_json to /var/log/snort)"
    fi
fi
register
install_sensor_forwarder snort /var/log/snort/alert_json.txt
say "done"
