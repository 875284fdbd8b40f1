//! Network-namespace lab for end-to-end tests: three namespaces `<prefix>srv`,
//! `<prefix>sen` and `<prefix>att` on one /24 (a bridge in `srv`, veth pairs to the other
//! two), `apiary server` run inside `srv`, and the one-line deploy command run inside `sen`
//! in a private mount namespace whose state directories are bind-mounted from a temp dir.
//!
//! Each test file picks its own prefix and subnet so the labs never collide. Needs root;
//! [`Lab::usable`] says whether the machine can run one. On drop every process left in the
//! lab's namespaces (started by the test or by a deploy script in them) is killed, then the
//! namespaces are deleted.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub fn sh(cmd: &str) -> (bool, String) {
    let out = Command::new("bash")
        .args(["-c", cmd])
        .output()
        .expect("run bash");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

pub fn must(cmd: &str) -> String {
    let (ok, out) = sh(cmd);
    assert!(ok, "command failed: {cmd}\n{out}");
    out
}

pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Whether we are root and have `ip`, `unshare` and the given extra commands; prints a loud
/// SKIPPED line naming `test` when not.
pub fn usable(test: &str, extra: &[&str]) -> bool {
    let mut tools = vec!["ip", "unshare", "curl"];
    tools.extend_from_slice(extra);
    let have = tools
        .iter()
        .map(|t| format!("command -v {t}"))
        .collect::<Vec<_>>()
        .join(" && ");
    if !sh("test $(id -u) -eq 0").0 || !sh(&have).0 {
        eprintln!(
            "\n*** SKIPPED {test}: needs root and {} ***\n",
            tools.join(", ")
        );
        return false;
    }
    true
}

/// Polls `f` every 250 ms until it holds; panics naming `what` after `secs` seconds.
pub fn wait_for(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while !f() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
}

/// [`wait_for`] for a daemon started by a deploy script: the panic shows `log()` (its
/// output files) so a daemon that failed to start says why.
pub fn wait_for_daemon(what: &str, secs: u64, log: &dyn Fn() -> String, f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    let mut f = f;
    while !f() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}; output:\n{}",
            log()
        );
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
}

/// Shell commands, run in a deploy's private mount namespace before the deploy command,
/// that make a venv and its interpreter reachable for an unprivileged user (the
/// honeypot's own) when either sits below a directory others cannot search (pyenv under a
/// 0700 /root, a checkout in a `mktemp -d` directory): each such directory becomes a
/// world-searchable tmpfs holding only the entry on the way, bind-mounted back. Empty when
/// the user can run the venv's Python anyway.
pub fn interpreter_view(venv: &Path, stage: &Path) -> String {
    let venv = std::fs::canonicalize(venv).unwrap();
    let python = std::fs::canonicalize(venv.join("bin/python3")).unwrap();
    // Through a shell: setpriv's own exec still has root's capabilities (a script it runs
    // would reach the interpreter), the shell's exec has none (like twistd started by Cowrie).
    let (reachable, _) = sh(&format!(
        "setpriv --reuid=nobody --regid=$(id -g nobody) --clear-groups /bin/sh -c '{}/bin/python3 -c pass'",
        venv.display()
    ));
    if reachable {
        return String::new();
    }
    // (closed directory, the entry in it on the way to the venv or the interpreter)
    let mut hidden: Vec<(PathBuf, std::ffi::OsString)> = Vec::new();
    for path in [&python, &venv] {
        let mut dir = PathBuf::from("/");
        for part in path.strip_prefix("/").unwrap().components() {
            let mode = std::os::unix::fs::PermissionsExt::mode(
                &std::fs::metadata(&dir).unwrap().permissions(),
            );
            if mode & 0o001 == 0 {
                let entry = (dir.clone(), part.as_os_str().to_owned());
                if !hidden.contains(&entry) {
                    hidden.push(entry);
                }
                break;
            }
            dir.push(part);
        }
    }
    assert!(
        !hidden.is_empty(),
        "{} is not runnable by unprivileged users",
        python.display()
    );
    let mut cmd = String::new();
    for (i, (dir, entry)) in hidden.iter().enumerate() {
        let (from, to) = (dir.join(entry), stage.join(i.to_string()));
        cmd.push_str(&format!(
            "mkdir -p {1} && mount --bind {0} {1} && ",
            from.display(),
            to.display()
        ));
    }
    let mut closed: Vec<&PathBuf> = hidden.iter().map(|(d, _)| d).collect();
    closed.dedup();
    for dir in closed {
        cmd.push_str(&format!(
            "mount -t tmpfs -o mode=0755 none {} && ",
            dir.display()
        ));
    }
    for (i, (dir, entry)) in hidden.iter().enumerate() {
        let (to, from) = (dir.join(entry), stage.join(i.to_string()));
        cmd.push_str(&format!(
            "mkdir -p {0} && mount --bind {1} {0} && ",
            to.display(),
            from.display()
        ));
    }
    cmd
}

/// A Python venv `.venv-<name>` at the repo root, usable when the Python code `check` exits
/// 0; otherwise (re)built by the shell commands `install` (`{v}` stands for its path), as
/// `.ci/run` does.
pub fn python_venv(name: &str, check: &str, install: &str) -> PathBuf {
    // Canonical: the venv's scripts name this path, and the deploy view keeps only it.
    let root = std::fs::canonicalize(super::repo_root()).unwrap();
    let venv = root.join(format!(".venv-{name}"));
    let ready = || {
        Command::new(venv.join("bin/python"))
            .args(["-c", check])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !ready() {
        let v = venv.display().to_string();
        eprintln!("creating {v}");
        must(&format!(
            "rm -rf {v} && python3 -m venv {v} && {}",
            install.replace("{v}", &v)
        ));
        assert!(ready(), "{v} unusable after install");
    }
    venv
}

/// The `apiary-sensor` binary next to the `apiary` one (built when missing).
pub fn sensor_binary() -> PathBuf {
    let dir = Path::new(env!("CARGO_BIN_EXE_apiary"))
        .parent()
        .unwrap()
        .to_path_buf();
    let bin = dir.join("apiary-sensor");
    if !bin.exists() {
        must(&format!(
            "cd {} && cargo build -p apiary-sensor",
            super::repo_root().display()
        ));
    }
    assert!(bin.exists(), "no {}", bin.display());
    bin
}

pub struct Lab {
    prefix: String,
    net: String,
    /// Temp dir of the test: `data/` is the server's data dir, the rest is for mounts.
    pub dir: PathBuf,
    pub server: Option<Child>,
}

impl Lab {
    /// Creates the namespaces `<prefix>{srv,sen,att}` on `<net>.0/24` (`net` like
    /// "10.231.77"): srv .1 (bridge), sen .2, att .3. sen and att route via srv.
    pub fn new(prefix: &str, net: &str, dir: &Path) -> Lab {
        let lab = Lab {
            prefix: prefix.into(),
            net: net.into(),
            dir: dir.to_path_buf(),
            server: None,
        };
        for role in ["srv", "sen", "att"] {
            let ns = lab.ns(role);
            let _ = sh(&format!("ip netns del {ns} 2>/dev/null"));
            must(&format!("ip netns add {ns} && ip -n {ns} link set lo up"));
        }
        let (srv, br) = (lab.ns("srv"), lab.srv());
        must(&format!(
            "ip -n {srv} link add br0 type bridge && ip -n {srv} link set br0 up && ip -n {srv} addr add {br}/24 dev br0"
        ));
        for (role, ip) in [("sen", lab.sen()), ("att", lab.att())] {
            let ns = lab.ns(role);
            must(&format!(
                "ip -n {srv} link add p-{role} type veth peer name eth0 netns {ns} && \
                 ip -n {srv} link set p-{role} master br0 up && \
                 ip -n {ns} addr add {ip}/24 dev eth0 && ip -n {ns} link set eth0 up && \
                 ip -n {ns} route add default via {br}"
            ));
        }
        std::fs::create_dir_all(dir.join("data")).unwrap();
        lab
    }

    /// A file under the lab's dir (e.g. a mounted log) as text; empty when missing.
    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.dir.join(rel)).unwrap_or_default()
    }

    /// Namespace name of a role: "srv", "sen" or "att".
    pub fn ns(&self, role: &str) -> String {
        format!("{}{role}", self.prefix)
    }

    pub fn srv(&self) -> String {
        format!("{}.1", self.net)
    }

    pub fn sen(&self) -> String {
        format!("{}.2", self.net)
    }

    pub fn att(&self) -> String {
        format!("{}.3", self.net)
    }

    /// `cmd` (bash) run in the role's namespace.
    pub fn exec(&self, role: &str, cmd: &str) -> (bool, String) {
        sh(&format!(
            "ip netns exec {} bash -c {}",
            self.ns(role),
            shell_quote(cmd)
        ))
    }

    pub fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// [`Lab::new`] with the server started (serving the `apiary-sensor` built next to
    /// `apiary`); returns it and an admin API key.
    pub fn with_server(prefix: &str, net: &str, dir: &Path) -> (Lab, String) {
        let mut lab = Lab::new(prefix, net, dir);
        lab.start_server(&sensor_binary());
        let key = lab.api_key();
        (lab, key)
    }

    /// Starts `apiary server` in srv (hpfeeds :10000, HTTP :8080, log in data/server.log,
    /// admin admin@example.org) serving `sensor_bin` to deploy scripts; waits for /healthz.
    pub fn start_server(&mut self, sensor_bin: &Path) {
        let data = self.data();
        let srv = self.srv();
        let mut child = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns("srv"),
                env!("CARGO_BIN_EXE_apiary"),
            ])
            .arg("server")
            .args(["--hpfeeds-listen", &format!("{srv}:10000")])
            .args(["--http-listen", &format!("{srv}:8080")])
            .arg("--data-dir")
            .arg(&data)
            .env_remove("APIARY_CONFIG")
            .env("APIARY_LOG", "info")
            .env("APIARY_ADMIN_EMAIL", "admin@example.org")
            .env("APIARY_ADMIN_PASSWORD", "correct horse battery staple")
            .env("APIARY_DEPLOY__SENSOR_BINARY", sensor_bin)
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(data.join("server.log"))
                    .unwrap(),
            ))
            .spawn()
            .expect("spawn server");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if self
                .exec("srv", &format!("curl -fsS -m 2 http://{srv}:8080/healthz"))
                .0
            {
                self.server = Some(child);
                return;
            }
            if let Ok(Some(s)) = child.try_wait() {
                panic!("server exited: {s}");
            }
            assert!(Instant::now() < deadline, "server did not come up");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn stop_server(&mut self) {
        if let Some(mut child) = self.server.take() {
            let _ = sh(&format!("kill -TERM {}", child.id()));
            let _ = child.wait();
        }
    }

    pub fn server_log(&self) -> String {
        std::fs::read_to_string(self.data().join("server.log")).unwrap_or_default()
    }

    /// A new API key of the admin.
    pub fn api_key(&self) -> String {
        let (ok, out, err) = super::admin(&self.data(), &["apikey", "create", "admin@example.org"]);
        assert!(ok, "{out}{err}");
        out.split_whitespace()
            .find(|w| w.len() == 64 && w.chars().all(|c| c.is_ascii_hexdigit()))
            .unwrap_or_else(|| panic!("no key in {out}"))
            .to_owned()
    }

    /// GET on the API from srv, as JSON.
    pub fn api(&self, key: &str, path: &str) -> Value {
        let (ok, out) = self.exec(
            "srv",
            &format!(
                "curl -fsS -m 10 -H 'Authorization: Bearer {key}' 'http://{}:8080{path}'",
                self.srv()
            ),
        );
        assert!(ok, "GET {path}: {out}");
        serde_json::from_str(&out).or_panic(path, &out)
    }

    /// A one-hour enrollment token for the seeded deploy script `script` (its name on the
    /// Deploy page); returns the one-line command shown there, with `sudo` removed.
    pub fn deploy_command(&self, key: &str, script: &str) -> String {
        let (ok, out) = self.exec(
            "srv",
            &format!(
                "curl -fsS -X POST -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' \
                 -d '{{\"script\": \"{script}\", \"hours\": 1}}' http://{}:8080/api/deploy/token/",
                self.srv()
            ),
        );
        assert!(ok, "token for {script}: {out}");
        let tok: Value = serde_json::from_str(&out).or_panic("token", &out);
        let command = tok["command"]
            .as_str()
            .unwrap()
            .replace("sudo bash", "bash");
        assert!(
            command.starts_with(&format!("curl -fsSL http://{}:8080/deploy/", self.srv())),
            "{command}"
        );
        command
    }

    /// Runs `command` in sen in a private mount namespace where each `(dir, target)` of
    /// `mounts` has `self.dir/dir` bind-mounted over `target` (files or directories; the
    /// sources are created when missing). Panics when it fails; returns its output.
    pub fn deploy(&self, command: &str, mounts: &[(&str, &str)]) -> String {
        let d = self.dir.display();
        let mut inner = String::new();
        for (src, target) in mounts {
            let is_file = target.ends_with(".log");
            let path = self.dir.join(src);
            if is_file {
                if !path.exists() {
                    std::fs::write(&path, b"").unwrap();
                }
                let _ = sh(&format!("mkdir -p $(dirname {target}) && touch {target}"));
            } else {
                std::fs::create_dir_all(&path).unwrap();
                let _ = sh(&format!("mkdir -p {target}"));
            }
            inner.push_str(&format!("mount --bind {d}/{src} {target} && "));
        }
        inner.push_str(command);
        let (ok, out) = sh(&format!(
            "ip netns exec {} unshare -m --propagation private bash -c {}",
            self.ns("sen"),
            shell_quote(&inner)
        ));
        eprintln!("[deploy] {out}");
        assert!(ok, "deploy command failed:\n{out}");
        out
    }

    /// Runs the deploy `command` of a Python honeypot (Conpot, Cowrie) whose script keeps
    /// its venv in `/opt/<honeypot>/venv`: `mounts` must bind `opt` there, and that venv
    /// links to `venv`, built beforehand (the namespaces have no internet for pip), with its
    /// interpreter made reachable for the honeypot's user. Checks that the script registered
    /// and started `honeypot` as the user of that name without systemd, and reused the venv.
    /// Returns the command as run (for a second run) and its output.
    pub fn deploy_python_honeypot(
        &self,
        honeypot: &str,
        command: &str,
        venv: &Path,
        mounts: &[(&str, &str)],
    ) -> (String, String) {
        let home = self.dir.join("opt");
        std::fs::create_dir_all(&home).unwrap();
        let venv = std::fs::canonicalize(venv).unwrap();
        std::os::unix::fs::symlink(&venv, home.join("venv")).unwrap();
        let view = interpreter_view(&venv, &self.dir.join("interpreter"));
        let command = format!("{view}{command}");
        let out = self.deploy(&command, mounts);
        assert!(out.contains("created sensor"), "{out}");
        let started = format!("no systemd: {honeypot} started in the background as {honeypot}");
        assert!(out.contains(&started), "{out}");
        let installed = format!("installed {honeypot}");
        assert!(!out.contains(&installed), "the venv was rebuilt: {out}");
        (command, out)
    }

    /// Runs a deploy `command` again: the registration is reused (still one sensor) and the
    /// daemon whose pid is in `pidfile` restarted: a new pid, running as `user`, the old
    /// process gone.
    pub fn redeploy_restarts(
        &self,
        key: &str,
        command: &str,
        mounts: &[(&str, &str)],
        pidfile: &Path,
        user: &str,
    ) {
        let pid = std::fs::read_to_string(pidfile).unwrap();
        let out = self.deploy(command, mounts);
        assert!(out.contains("already registered"), "{out}");
        let sensors = self.api(key, "/api/sensor/");
        assert_eq!(sensors.as_array().unwrap().len(), 1, "{sensors}");
        let pid2 = std::fs::read_to_string(pidfile).unwrap();
        assert_ne!(pid.trim(), pid2.trim(), "{user}'s daemon was not restarted");
        assert!(
            !sh(&format!("kill -0 {}", pid.trim())).0,
            "the old daemon (pid {pid}) still runs"
        );
        let (_, running_as) = sh(&format!("ps -o user= -p {}", pid2.trim()));
        assert_eq!(
            running_as.trim(),
            user,
            "after the second deploy, pid {pid2}"
        );
    }

    /// Kills every process in the lab's namespaces (by pid).
    pub fn kill_all(&self) {
        for role in ["sen", "att", "srv"] {
            let (_, pids) = sh(&format!("ip netns pids {}", self.ns(role)));
            for pid in pids.split_whitespace() {
                if pid.chars().all(|c| c.is_ascii_digit()) {
                    let _ = sh(&format!("kill -KILL {pid}"));
                }
            }
        }
    }
}

trait OrPanic<T> {
    fn or_panic(self, what: &str, text: &str) -> T;
}

impl<T, E: std::fmt::Display> OrPanic<T> for Result<T, E> {
    fn or_panic(self, what: &str, text: &str) -> T {
        self.unwrap_or_else(|e| panic!("{what}: {e}: {text}"))
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(mut c) = self.server.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self.kill_all();
        for role in ["srv", "sen", "att"] {
            let _ = sh(&format!("ip netns del {}", self.ns(role)));
        }
    }
}
