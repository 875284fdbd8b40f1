#!/usr/bin/env bash
# Conpot (ICS honeypot) deploy script for Apiary (template; the server fills in {{SERVER_URL}},
# {{TOKEN}}, {{HPF_HOST}} and {{HPF_PORT}} when it serves GET /deploy/<token>.sh).
#
#   curl -fsSL {{SERVER_URL}}/deploy/{{TOKEN}}.sh | sudo bash
#
# Installs Conpot 0.6.0 (its last PyPI release) into a venv (/opt/conpot/venv) with the
# dependency pins it needs on today's Python (as-is it pulls pycrypto, which no longer
# builds), writes its config with the hpfeeds output (channel conpot.events) and the
# default template moved to the protocols' standard ports (Modbus 502, S7 102, HTTP 80, ...:
# Conpot's events do not say which port was hit, so Apiary files them under the standard
# ones), and runs it as the unprivileged user conpot with only CAP_NET_BIND_SERVICE
# (systemd unit, or setpriv + nohup when there is no systemd). Conpot 0.6.0 refuses to run
# as root unless forced, and forcing it (-f) ignores the given config.
#
# TESTED WITH: Debian 12 / Python 3.11: crates/apiary-server/tests/conpot_netns.rs runs this
# script as its one-line command in a network namespace (no systemd there: the setpriv +
# nohup path) with the venv already built from CONPOT_DEPS (as .ci/run does; the namespace
# has no internet for the pip step). Python 3.12+ lacks asyncore, which pysnmp 4.4 needs:
# use a 3.11 python3 there.
# Idempotent: the registration is kept in /etc/apiary-sensor/conpot-registration.json and a
# second run reuses it (the server also answers a second registration from the same host
# and token with the same sensor).
set -euo pipefail
SERVER_URL="{{SERVER_URL}}"; TOKEN="{{TOKEN}}"; HPF_HOST="{{HPF_HOST}}"; HPF_PORT="{{HPF_PORT}}"
HONEYPOT="conpot"
# @common@ (say, die, pkg_install, register, ...)
HOME_DIR=/opt/conpot; RUN_USER=conpot
# Every Requires-Dist of conpot 0.6.0 but pycrypto (and its test/doc tools), plus
# pycryptodome; pysnmp/pysmi/pyasn1 and scapy pinned to versions its code still works with.
CONPOT_DEPS="gevent pysnmp==4.4.12 pysmi==0.3.4 pyasn1<0.5 lxml bottle jinja2 beautifulsoup4 requests libtaxii>=1.1.0 xlrd crc16 natsort scapy==2.4.5 enum34 hpfeeds3==0.9.10 modbus-tk stix-validator stix cybox bacpypes==0.17.0 pyghmi mixbox cpppo fs python-slugify tftpy pycryptodome"

# Writes under $HOME_DIR: template/ (the packaged default template on the standard ports),
# conpot.cfg (hpfeeds to $HPF_HOST:$HPF_PORT as $IDENT/$SECRET), var/{data,tmp}; sets
# CONPOT_CMD. Needs the venv.
conpot_setup() {
    local pkg p
    pkg=$("$HOME_DIR/venv/bin/python" -c 'import conpot, os; print(os.path.dirname(conpot.__file__))')
    rm -rf "$HOME_DIR/template"; cp -r "$pkg/templates/default" "$HOME_DIR/template"
    for p in modbus:502 s7comm:102 http:80 snmp:161 ipmi:623 ftp:21 tftp:69; do
        sed -i -E "s/^(<${p%%:*} [^>]*port=\")[0-9]+\"/\1${p#*:}\"/" "$HOME_DIR/template/${p%%:*}/${p%%:*}.xml"
    done
    install -d "$HOME_DIR/var" "$HOME_DIR/var/data" "$HOME_DIR/var/tmp"
    cat > "$HOME_DIR/conpot.cfg" <<CFG
[common]
sensorid = $IDENT
[virtual_file_system]
data_fs_url = osfs://$HOME_DIR/var/data
fs_url = tar://$pkg/data.tar
[session]
timeout = 30
[json]
enabled = False
[sqlite]
enabled = False
[mysql]
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
[taxii]
enabled = False
[fetch_public_ip]
enabled = False
[change_mac_addr]
enabled = False
CFG
    CONPOT_CMD=("$HOME_DIR/venv/bin/conpot" --template "$HOME_DIR/template" --config "$HOME_DIR/conpot.cfg"
        --logfile "$HOME_DIR/var/conpot.log" --temp_dir "$HOME_DIR/var/tmp")
}

id "$RUN_USER" >/dev/null 2>&1 || useradd --system --create-home --home-dir "$HOME_DIR" --shell "$(command -v nologin || echo /sbin/nologin)" "$RUN_USER"
install -d -o "$RUN_USER" "$HOME_DIR"
if ! "$HOME_DIR/venv/bin/python" -c 'import conpot, hpfeeds, gevent' >/dev/null 2>&1; then
    pkg_install python3 python3-venv python3-dev build-essential libxml2-dev libxslt1-dev curl ca-certificates -- python3 python3-devel gcc libxml2-devel libxslt-devel curl
    rm -rf "$HOME_DIR/venv"
    python3 -m venv "$HOME_DIR/venv"
    # shellcheck disable=SC2086 # one word per requirement
    "$HOME_DIR/venv/bin/pip" install -q $CONPOT_DEPS
    "$HOME_DIR/venv/bin/pip" install -q --no-deps conpot==0.6.0
    say "installed conpot 0.6.0 in $HOME_DIR/venv"
fi
register
conpot_setup
chown -R "$RUN_USER" "$HOME_DIR/var"
chown "$RUN_USER" "$HOME_DIR/conpot.cfg"; chmod 0600 "$HOME_DIR/conpot.cfg"
if has_systemd; then
    printf '[Unit]\nDescription=Conpot (Apiary)\nAfter=network-online.target\n[Service]\nUser=%s\nAmbientCapabilities=CAP_NET_BIND_SERVICE\nWorkingDirectory=%s\nExecStart=%s\nRestart=always\n[Install]\nWantedBy=multi-user.target\n' \
        "$RUN_USER" "$HOME_DIR/var" "${CONPOT_CMD[*]}" > /etc/systemd/system/conpot.service
    systemctl daemon-reload; systemctl enable conpot.service >/dev/null 2>&1 || true; systemctl restart conpot.service
    say "conpot.service (re)started"
else
    if [ -f "$HOME_DIR/var/conpot.pid" ] && kill -0 "$(cat "$HOME_DIR/var/conpot.pid")" 2>/dev/null; then
        old=$(cat "$HOME_DIR/var/conpot.pid"); kill "$old" || true
        for _ in $(seq 20); do kill -0 "$old" 2>/dev/null || break; sleep 0.5; done   # its ports must be free
    fi
    # nohup execs setpriv execs conpot: $! is Conpot's pid (a backgrounded subshell would
    # record its own pid and hold the script's output open).
    cd "$HOME_DIR/var"
    nohup setpriv --reuid="$RUN_USER" --regid="$(id -g "$RUN_USER")" --init-groups \
        --inh-caps=+net_bind_service --ambient-caps=+net_bind_service -- "${CONPOT_CMD[@]}" \
        < /dev/null >> /var/log/conpot-foreground.log 2>&1 &
    echo $! > "$HOME_DIR/var/conpot.pid"
    cd /
    say "no systemd: conpot started in the background as $RUN_USER (log /var/log/conpot-foreground.log)"
fi
say "done"
