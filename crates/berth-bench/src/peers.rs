//! The processes a run starts: Berth (the release binary) and CNCF Distribution (Debian's
//! `docker-registry`), each on its own loopback port with its own temporary directory, and a small
//! registry client both are driven with. Every child is killed when its handle drops.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use base64::Engine;
use sha2::{Digest, Sha256};

/// A free port on 127.0.0.1.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn wait_for_port(port: u16, child: &mut Child, what: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Some(status) = child.try_wait()? {
            bail!("{what} exited at start-up: {status}");
        }
        if Instant::now() > deadline {
            bail!("{what} did not listen on 127.0.0.1:{port} within 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// Resident and peak memory of a process, in MiB, from `/proc`.
pub fn memory_mib(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// A running registry of either kind.
pub struct Running {
    /// The child process.
    pub child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

impl Running {
    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Kills it with SIGKILL and reaps it.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Berth: a database, a data directory and an access token for the `bench` superuser.
pub struct Berth {
    /// The `berth` binary.
    pub bin: PathBuf,
    /// The data directory.
    pub dir: PathBuf,
    /// The database URL.
    pub database_url: String,
    /// An access token with every scope (used as `$oauthtoken` on `/v2`, Bearer on `/api/v1`).
    pub token: String,
}

impl Berth {
    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("BERTH_")) {
            c.env_remove(k);
        }
        c.args(args)
            .env("BERTH_DATA_DIR", &self.dir)
            .env("BERTH_DATABASE_URL", &self.database_url)
            .env("BERTH_LOG_LEVEL", "error");
        c
    }

    /// Migrates a fresh database and creates the `bench` superuser and its token.
    pub fn setup(bin: &Path, dir: &Path, database_url: &str) -> anyhow::Result<Berth> {
        let mut b = Berth {
            bin: bin.to_path_buf(),
            dir: dir.to_path_buf(),
            database_url: database_url.to_owned(),
            token: String::new(),
        };
        ok(b.command(&["migrate"]).output()?, "migrate")?;
        let scopes = "repo:read,repo:write,repo:admin,repo:create,user:read,user:admin,org:admin,super:user";
        b.token = b.add_user("bench", true, scopes)?;
        Ok(b)
    }

    /// Creates user `name` (a superuser or not) with the CLI and returns an access token with
    /// `scopes`; its password is `bench-password`.
    pub fn add_user(&self, name: &str, superuser: bool, scopes: &str) -> anyhow::Result<String> {
        let email = format!("{name}@example.com");
        let mut args = vec!["admin", "create-user", name, "--email", &email, "--password-stdin"];
        if superuser {
            args.push("--superuser");
        }
        let mut child = self
            .command(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        child.stdin.take().context("stdin")?.write_all(b"bench-password\n")?;
        ok(child.wait_with_output()?, "admin create-user")?;
        ok(
            self.command(&["admin", "create-token", name, "--scope", scopes])
                .output()?,
            "admin create-token",
        )
    }

    /// Starts `berth serve` with `env` on top of the bench's settings.
    pub fn serve(&self, env: &[(&str, String)]) -> anyhow::Result<Running> {
        let port = free_port()?;
        let mut c = self.command(&["serve"]);
        c.env("BERTH_LISTEN", format!("127.0.0.1:{port}"))
            .env("BERTH_GC_INTERVAL_SECS", "0")
            .env("BERTH_NOTIFICATIONS__ALLOWED_NETWORKS", "[\"127.0.0.0/8\"]")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (k, v) in env {
            c.env(k, v);
        }
        let mut child = c.spawn().with_context(|| format!("starting {}", self.bin.display()))?;
        wait_for_port(port, &mut child, "berth serve")?;
        Ok(Running { child, port })
    }

    /// The `Authorization` value for `/v2` (Basic `$oauthtoken` with the access token).
    pub fn registry_auth(&self) -> String {
        let raw = format!("$oauthtoken:{}", self.token);
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(raw))
    }
}

/// A CLI command's standard output, or its standard error as the error.
fn ok(out: std::process::Output, what: &str) -> anyhow::Result<String> {
    if !out.status.success() {
        bail!("berth {what}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Starts Distribution on a fresh directory, sending push events to `notify` when given.
pub fn distribution(dir: &Path, notify: Option<&str>) -> anyhow::Result<Running> {
    let storage = format!("  filesystem:\n    rootdirectory: {}\n", dir.join("storage").display());
    distribution_on(dir, notify, &storage)
}

/// Distribution with the `storage:` entries given (indented two spaces), e.g. its `s3` driver.
pub fn distribution_on(dir: &Path, notify: Option<&str>, storage: &str) -> anyhow::Result<Running> {
    let port = free_port()?;
    let mut config = format!(
        "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n{storage}  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n"
    );
    if let Some(url) = notify {
        config.push_str(&format!(
            "notifications:\n  endpoints:\n    - name: bench\n      url: {url}\n      timeout: 1s\n      threshold: 5\n      backoff: 1s\n"
        ));
    }
    let path = dir.join("config.yml");
    std::fs::write(&path, config)?;
    let bin = which("docker-registry").context("docker-registry (Debian package docker-registry) is required")?;
    let mut child = Command::new(bin)
        .arg("serve")
        .arg(&path)
        // Its AWS SDK cannot load a CA bundle into the transport it builds, and panics when this
        // is set (as it is on this machine); plain-HTTP loopback S3 needs none.
        .env_remove("AWS_CA_BUNDLE")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    wait_for_port(port, &mut child, "docker-registry")?;
    Ok(Running { child, port })
}

/// The S3 service scenario 8 stores blobs in (SeaweedFS, which `scripts/bench` starts):
/// `TEST_S3_ENDPOINT`, `TEST_S3_BUCKET`, `TEST_S3_ACCESS_KEY`, `TEST_S3_SECRET_KEY`, with the
/// defaults `scripts/test` uses.
pub struct S3Target {
    /// The service's URL.
    pub endpoint: String,
    /// The bucket.
    pub bucket: String,
    /// The access key id.
    pub access_key: String,
    /// The secret access key.
    pub secret_key: String,
}

impl S3Target {
    /// From the environment.
    pub fn from_env() -> S3Target {
        let var = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_owned());
        S3Target {
            endpoint: var("TEST_S3_ENDPOINT", "http://127.0.0.1:9200"),
            bucket: var("TEST_S3_BUCKET", "berth-test"),
            access_key: var("TEST_S3_ACCESS_KEY", "testkey"),
            secret_key: var("TEST_S3_SECRET_KEY", "testsecret"),
        }
    }

    /// Berth's `BERTH_STORAGE__*` settings for keys under `prefix`.
    pub fn berth_env(&self, prefix: &str, redirect: bool) -> Vec<(&'static str, String)> {
        vec![
            ("BERTH_STORAGE__KIND", "s3".into()),
            ("BERTH_STORAGE__BUCKET", self.bucket.clone()),
            ("BERTH_STORAGE__ENDPOINT", self.endpoint.clone()),
            ("BERTH_STORAGE__ALLOW_HTTP", "true".into()),
            ("BERTH_STORAGE__PREFIX", prefix.into()),
            ("BERTH_STORAGE__ACCESS_KEY_ID", self.access_key.clone()),
            ("BERTH_STORAGE__SECRET_ACCESS_KEY", self.secret_key.clone()),
            ("BERTH_STORAGE__REDIRECT", redirect.to_string()),
        ]
    }

    /// Distribution's `s3` driver on the same bucket, under `root`; `redirect` as its
    /// `storage.redirect` (on by default in Distribution).
    pub fn distribution_storage(&self, root: &str, redirect: bool) -> String {
        format!(
            "  s3:\n    accesskey: {}\n    secretkey: {}\n    region: us-east-1\n    regionendpoint: {}\n    bucket: {}\n    rootdirectory: /{root}\n    secure: false\n    v4auth: true\n  redirect:\n    disable: {}\n",
            self.access_key, self.secret_key, self.endpoint, self.bucket, !redirect
        )
    }
}

/// Finds a program on `PATH`.
pub fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(program))
        .find(|p| p.is_file())
}

/// `sha256:<hex>` of `bytes`.
pub fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// A minimal registry client: blob upload (POST then PUT) and manifest PUT, as every client does.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    auth: Option<String>,
}

impl Client {
    /// A client of the registry at `host`, with an `Authorization` value when it needs one.
    pub fn new(host: &str, auth: Option<String>) -> Client {
        Client {
            http: reqwest::Client::new(),
            base: format!("http://{host}"),
            auth,
        }
    }

    fn req(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        let r = self.http.request(method, url);
        match &self.auth {
            Some(a) => r.header("authorization", a),
            None => r,
        }
    }

    /// Uploads a blob unless the registry has it.
    pub async fn push_blob(&self, repo: &str, bytes: &[u8]) -> anyhow::Result<String> {
        let d = digest(bytes);
        let start = self
            .req(
                reqwest::Method::POST,
                &format!("{}/v2/{repo}/blobs/uploads/", self.base),
            )
            .send()
            .await?;
        if start.status() != 202 {
            bail!("starting an upload to {repo}: {}", start.status());
        }
        let location = start
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .context("upload without Location")?
            .to_owned();
        let mut url = if location.starts_with("http") {
            location
        } else {
            format!("{}{location}", self.base)
        };
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str(&format!("digest={d}"));
        let put = self
            .req(reqwest::Method::PUT, &url)
            .header("content-type", "application/octet-stream")
            .body(bytes.to_vec())
            .send()
            .await?;
        if put.status() != 201 {
            bail!("finishing an upload to {repo}: {}", put.status());
        }
        Ok(d)
    }

    /// PUTs an OCI manifest by tag.
    pub async fn put_manifest(&self, repo: &str, tag: &str, manifest: &[u8]) -> anyhow::Result<()> {
        let r = self
            .req(
                reqwest::Method::PUT,
                &format!("{}/v2/{repo}/manifests/{tag}", self.base),
            )
            .header("content-type", crate::image::OCI_MANIFEST)
            .body(manifest.to_vec())
            .send()
            .await?;
        if r.status() != 201 {
            bail!(
                "pushing {repo}:{tag}: {} {}",
                r.status(),
                r.text().await.unwrap_or_default()
            );
        }
        Ok(())
    }

    /// Calls Berth's `/api/v1`, with the bearer token unless it is empty.
    pub async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: serde_json::Value,
    ) -> anyhow::Result<serde_json::Value> {
        let mut r = self.http.request(method, format!("{}{path}", self.base)).json(&body);
        if !token.is_empty() {
            r = r.bearer_auth(token);
        }
        let r = r.send().await?;
        let status = r.status();
        let v: serde_json::Value = r.json().await.unwrap_or_default();
        if !status.is_success() {
            bail!("{path}: {status} {v}");
        }
        Ok(v)
    }
}
