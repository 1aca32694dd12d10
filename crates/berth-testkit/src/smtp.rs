//! A real SMTP receiver on loopback: Python's aiosmtpd with its Maildir handler, as a child
//! process. `scripts/test` installs aiosmtpd into `target/py` and points `TEST_PYTHON` at
//! that interpreter; a missing aiosmtpd fails the test with a message saying so (never a skip).
//!
//! Received mails are parsed with `mailparse`, so tests assert on headers and on each MIME part.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One received mail.
#[derive(Debug, Clone)]
pub struct Mail {
    /// Every header, names lower-cased, in order.
    pub headers: Vec<(String, String)>,
    /// The `text/plain` part, decoded.
    pub text: Option<String>,
    /// The `text/html` part, decoded.
    pub html: Option<String>,
    /// The content type of the whole message (e.g. `multipart/alternative`).
    pub content_type: String,
}

impl Mail {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str())
    }
}

/// The receiver. Killed when dropped.
pub struct SmtpReceiver {
    /// Its port on 127.0.0.1.
    pub port: u16,
    child: Child,
    maildir: PathBuf,
    _dir: tempfile::TempDir,
    seen: std::sync::Mutex<std::collections::HashSet<PathBuf>>,
}

impl SmtpReceiver {
    /// Starts aiosmtpd on a free loopback port and waits until it accepts connections.
    pub fn start() -> SmtpReceiver {
        let python = std::env::var("TEST_PYTHON").unwrap_or_else(|_| "python3".into());
        let dir = tempfile::tempdir().expect("temp dir");
        let maildir = dir.path().join("mail");
        for attempt in 0..3 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port")
                .port();
            let mut child = Command::new(&python)
                .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
                .args(["-c", "aiosmtpd.handlers.Mailbox"])
                .arg(&maildir)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run {python} (set TEST_PYTHON; see scripts/test): {e}"));
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return SmtpReceiver {
                        port,
                        child,
                        maildir,
                        _dir: dir,
                        seen: Default::default(),
                    };
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let out = child
                .wait_with_output()
                .map(|o| String::from_utf8_lossy(&o.stderr).into_owned());
            assert!(
                attempt < 2,
                "aiosmtpd did not start with {python} (is it installed? scripts/test installs it): {out:?}"
            );
        }
        unreachable!("the loop returns or panics")
    }

    /// Waits up to `within` for the next mail not returned before.
    pub async fn next(&self, within: Duration) -> Option<Mail> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(m) = self.take_new() {
                return Some(m);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    fn take_new(&self) -> Option<Mail> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.maildir.join("new"))
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        // Maildir names start with the delivery time in seconds; order by modification time.
        files.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        let path = files.into_iter().find(|p| !seen.contains(p))?;
        let raw = std::fs::read(&path).ok()?;
        seen.insert(path);
        Some(parse(&raw))
    }
}

impl Drop for SmtpReceiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn parse(raw: &[u8]) -> Mail {
    let parsed = mailparse::parse_mail(raw).expect("a parsable mail");
    let headers = parsed
        .headers
        .iter()
        .map(|h| (h.get_key().to_ascii_lowercase(), h.get_value()))
        .collect();
    let mut text = None;
    let mut html = None;
    let mut stack = vec![&parsed];
    while let Some(part) = stack.pop() {
        match part.ctype.mimetype.as_str() {
            // Bodies travel with CRLF line ends; compare them as written.
            "text/plain" => text = part.get_body().ok().map(|b| b.replace("\r\n", "\n")),
            "text/html" => html = part.get_body().ok().map(|b| b.replace("\r\n", "\n")),
            _ => stack.extend(part.subparts.iter()),
        }
    }
    Mail {
        headers,
        text,
        html,
        content_type: parsed.ctype.mimetype.clone(),
    }
}
