#!/usr/bin/env bash
# Conpot (ICS honeypot) deploy script for Apiary (template; the server fills in {{SERVER_URL}},
# {{TOKEN}}, {{HPF_HOST}} and {{HPF_PORT}} when it serves GET /deploy/<token>.sh).
#
#   curl -fsSL {{SERVER_URL}}/deploy/{{TOKEN}}.sh | sudo bash
#
# Installs Conpot from PyPI into a venv (/opt/conpot/venv; needs python3, python3-venv
# and build tools from the distribution), writes its hpfeeds output settings (channel
# conpot.events) and starts it with the default template (systemd unit, or nohup when there
# is no systemd). Conpot's PyPI releases lag its Python support; if pip fails on the
# host's Python, install an older python3 first.
#
# TESTED WITH: only `bash -n` and the server-side rendering test; not run against a real host yet.
# Idempotent: the registration is kept in /etc/apiary-sensor/conpot-registration.json and a
# second run reuses it (the server also answers a second registration from the same host
# and token with the same sensor).
set -euo pipefail
SERVER_URL="{{SERVER_URL}}"; TOKEN="{{TOKEN}}"; HPF_HOST="{{HPF_HOST}}"; HPF_PORT="{{HPF_PORT}}"
HONEYPOT="conpot"
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

HOME_DIR=/opt/conpot; RUN_USER=conpot
pkg_install python3 python3-venv python3-dev build-essential libxml2-dev libxslt1-dev curl ca-certificates -- python3 python3-devel gcc libxml2-devel libxslt-devel curl
id "$RUN_USER" >/dev/null 2>&1 || useradd --system --create-home --home-dir "$HOME_DIR" --shell "$(command -v nologin || echo /sbin/nologin)" "$RUN_USER"
install -d -o "$RUN_USER" "$HOME_DIR" "$HOME_DIR/var"
if [ ! -x "$HOME_DIR/venv/bin/conpot" ]; then
    python3 -m venv "$HOME_DIR/venv"
    "$HOME_DIR/venv/bin/pip" install -q conpot
    say "installed conpot in $HOME_DIR/venv"
fi
register
cat > "$HOME_DIR/conpot.cfg" <<CFG
[common]
sensorid = $IDENT
[session]
timeout = 30
[sqlite]
enabled = False
[syslog]
enabled = False
[hpfriends]
enabled = True
host = $HPF_HOST
port = $HPF_PORT
ident = $IDENT
secret = $SECRET
channels = ["conpot.events", ]
[fetch_public_ip]
enabled = False
[change_mac_addr]
enabled = False
CFG
chown "$RUN_USER" "$HOME_DIR/conpot.cfg"; chmod 0600 "$HOME_DIR/conpot.cfg"
CMD="$HOME_DIR/venv/bin/conpot --template default --config $HOME_DIR/conpot.cfg --logfile $HOME_DIR/var/conpot.log -f"
if has_systemd; then
    printf '[Unit]\nDescription=Conpot (Apiary)\nAfter=network-online.target\n[Service]\nUser=root\nWorkingDirectory=%s\nExecStart=%s\nRestart=always\n[Install]\nWantedBy=multi-user.target\n' \
        "$HOME_DIR/var" "$CMD" > /etc/systemd/system/conpot.service
    systemctl daemon-reload; systemctl enable conpot.service >/dev/null 2>&1 || true; systemctl restart conpot.service
    say "conpot.service (re)started"
else
    if [ -f "$HOME_DIR/var/conpot.pid" ] && kill -0 "$(cat "$HOME_DIR/var/conpot.pid")" 2>/dev/null; then kill "$(cat "$HOME_DIR/var/conpot.pid")" || true; sleep 1; fi
    (cd "$HOME_DIR/var" && nohup $CMD >> /var/log/conpot-foreground.log 2>&1 & echo $! > "$HOME_DIR/var/conpot.pid")
    say "no systemd: conpot started in the background (log /var/log/conpot-foreground.log)"
fi
say "done"
