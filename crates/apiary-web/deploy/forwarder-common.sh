# --- shared by the forwarder scripts (crates/apiary-web/deploy/forwarder-common.sh; the
# server puts it in each when it seeds them) ---
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
