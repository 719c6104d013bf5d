//! What the end-to-end tests share: the built binaries, the fetched media.
//!
//! The tests run the binaries that `cargo build --bins` left in the target
//! directory (`scripts/test.sh` builds them first), exactly as a user would.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn target_debug() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target"))
        .join("debug")
}

/// Path of a workspace binary in the dev profile.
pub fn binary(name: &str) -> PathBuf {
    let path = target_debug().join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --bins` first",
        path.display()
    );
    path
}

/// Path of a workspace example in the dev profile (`cargo test` builds
/// the examples of the packages it tests).
pub fn example(name: &str) -> PathBuf {
    let path = target_debug().join("examples").join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --examples` first",
        path.display()
    );
    path
}

/// A fetched test photo or clip.
pub fn media(name: &str) -> PathBuf {
    let dir = std::env::var_os("WAYSIDE_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("models/cache"));
    let path = dir.join("media").join(name);
    assert!(
        path.exists(),
        "{} is missing: run scripts/setup-models.sh",
        path.display()
    );
    path
}

/// `wayside ARGS…` run from the workspace root (where the default config
/// finds `models/`), with its output captured.
pub fn wayside(args: &[&str]) -> Output {
    Command::new(binary("wayside"))
        .args(args)
        .current_dir(workspace())
        .output()
        .expect("wayside runs")
}

/// A `wayside serve` process on a free loopback port, killed on drop.
pub struct Daemon {
    child: Child,
    pub base: String,
    /// Holds the config, spool, media and (unless the test names its own)
    /// outbox directories.
    pub dir: tempfile::TempDir,
}

impl Daemon {
    /// Start with `extra` TOML appended to a config whose spool, media and
    /// outbox directories live in a fresh temporary directory. Lines of
    /// `extra` before its first table header belong to `[server]`. Faces
    /// and plates are off unless `extra` has a `[faces]` or `[plates]`
    /// table (each costs more models per frame, and most tests are about
    /// counting); `[outbox]` is only written when `extra` has none.
    pub async fn start(extra: &str) -> Daemon {
        let dir = tempfile::tempdir().expect("temp dir");
        Self::start_in(dir, extra).await
    }

    /// As [`Daemon::start`], in `dir`: a restart on the same directory
    /// finds the outbox the last run left.
    pub async fn start_in(dir: tempfile::TempDir, extra: &str) -> Daemon {
        Self::launch(dir, extra, false, &[]).await
    }

    /// As [`Daemon::start_logged`], in `dir` and with `env` added to the
    /// daemon's environment (e.g. a preloaded library that fakes the
    /// clock, `RUST_LOG`).
    pub async fn start_with_env(
        dir: tempfile::TempDir,
        extra: &str,
        env: &[(&str, &str)],
    ) -> Daemon {
        Self::launch(dir, extra, true, env).await
    }

    /// As [`Daemon::start`], with the daemon's log written to
    /// [`Daemon::log`] instead of the test's output, for tests about what
    /// it says.
    pub async fn start_logged(extra: &str) -> Daemon {
        let dir = tempfile::tempdir().expect("temp dir");
        Self::launch(dir, extra, true, &[]).await
    }

    /// The log of a daemon started with [`Daemon::start_logged`].
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("wayside.log")).unwrap_or_default()
    }

    async fn launch(
        dir: tempfile::TempDir,
        extra: &str,
        logged: bool,
        env: &[(&str, &str)],
    ) -> Daemon {
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let mut config = format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\npublic_url = \"{base}\"\nspool_dir = \"{spool}\"\n{extra}\n\
             [media]\ndir = \"{media}\"\n",
            spool = dir.path().join("spool").display(),
            media = dir.path().join("media").display(),
        );
        if !extra.contains("[faces]") {
            config.push_str("[faces]\nenabled = false\n");
        }
        if !extra.contains("[plates]") {
            config.push_str("[plates]\nenabled = false\n");
        }
        if !extra.contains("[outbox]") {
            config.push_str(&format!(
                "[outbox]\ndir = \"{}\"\n",
                dir.path().join("outbox").display()
            ));
        }
        let path = dir.path().join("wayside.toml");
        std::fs::write(&path, config).unwrap();
        let mut command = Command::new(binary("wayside"));
        command
            .args(["--config", path.to_str().unwrap(), "serve"])
            .envs(env.iter().copied())
            .current_dir(workspace());
        if logged {
            let log = std::fs::File::create(dir.path().join("wayside.log")).expect("log file");
            command.stderr(log);
        }
        let child = command.spawn().expect("wayside serve starts");
        let daemon = Daemon { child, base, dir };
        let client = reqwest::Client::new();
        for _ in 0..600 {
            if let Ok(r) = client.get(format!("{}/healthz", daemon.base)).send().await
                && r.status().is_success()
            {
                return daemon;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("wayside serve did not become healthy within 60 s");
    }

    /// SIGKILL, as a power cut would; the directory is handed back.
    pub fn kill(mut self) -> tempfile::TempDir {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let dir = tempfile::tempdir().expect("temp dir");
        std::mem::replace(&mut self.dir, dir)
    }

    /// Sum of the `/metrics` samples whose line starts with `prefix`.
    pub async fn metric(&self, prefix: &str) -> u64 {
        metric(&self.base, prefix).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Peak resident memory so far, MiB.
    pub fn peak_rss_mib(&self) -> u64 {
        peak_rss_mib(self.child.id())
    }
}

/// `VmHWM` of process `pid`, MiB.
pub fn peak_rss_mib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb / 1024)
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free loopback port (closed again: nothing listens there until a test
/// starts a server on it).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// Sum of the Prometheus samples at `base/metrics` whose line starts with
/// `prefix`.
pub async fn metric(base: &str, prefix: &str) -> u64 {
    let text = reqwest::get(format!("{base}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// A `wayside-data serve` process (embedded store), SIGKILLed on drop.
pub struct DataApi {
    child: Child,
    pub base: String,
    pub data_dir: PathBuf,
}

impl DataApi {
    /// Starts on `listen` (e.g. `127.0.0.1:0`) with `extra` flags, storing in
    /// `data_dir`; returns once it prints its address.
    pub fn start(data_dir: &Path, listen: &str, extra: &[&str]) -> DataApi {
        let mut child = Command::new(binary("wayside-data"))
            .args(["serve", "--listen", listen, "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .env("RUST_LOG", "error")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn wayside-data");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("first line");
        let base = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
            .to_string();
        DataApi {
            child,
            base,
            data_dir: data_dir.to_path_buf(),
        }
    }

    pub async fn metric(&self, prefix: &str) -> u64 {
        metric(&self.base, prefix).await
    }

    /// Peak resident memory so far, MiB.
    pub fn peak_rss_mib(&self) -> u64 {
        peak_rss_mib(self.child.id())
    }

    /// Stores `bytes` under `/media` as the outbox does; the answer
    /// (`{url, name, size}`).
    pub async fn put_media(
        &self,
        bytes: &[u8],
        file_name: &str,
        token: Option<&str>,
    ) -> serde_json::Value {
        let form = reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(bytes.to_vec()).file_name(file_name.to_string()),
        );
        let req = reqwest::Client::new()
            .post(format!("{}/media", self.base))
            .multipart(form);
        Self::accepted(req, token).await
    }

    /// POSTs `records` (one object or an array) to `/faces` or `/plates`
    /// as the outbox does; panics unless accepted.
    pub async fn ingest(&self, kind: &str, records: &serde_json::Value, token: Option<&str>) {
        let req = reqwest::Client::new()
            .post(format!("{}/{kind}", self.base))
            .json(records);
        Self::accepted(req, token).await;
    }

    async fn accepted(req: reqwest::RequestBuilder, token: Option<&str>) -> serde_json::Value {
        let req = match token {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        let res = req.send().await.expect("the data API answers");
        let status = res.status();
        let text = res.text().await.unwrap_or_default();
        assert!(status.is_success(), "{status}: {text}");
        serde_json::from_str(&text).unwrap_or_default()
    }

    /// Every face stored, as (id, source, time_ms), through `/search-face`
    /// (whose results carry the record id): what counting "each record
    /// once" needs on the receiving side. At most `search.max_k` (200).
    pub async fn faces(&self) -> Vec<(String, String, u64)> {
        // Any unit vector: every face has some score against it.
        let mut probe = vec![0.0f32; 512];
        probe[0] = 1.0;
        let res = reqwest::Client::new()
            .post(format!("{}/search-face", self.base))
            .json(&serde_json::json!({"face_vector": probe, "k": 200, "min_score": -1.0}))
            .send()
            .await
            .expect("the data API answers");
        assert!(res.status().is_success(), "search-face: {}", res.status());
        let body: serde_json::Value = res.json().await.expect("search JSON");
        body["results"]
            .as_array()
            .expect("results")
            .iter()
            .map(|r| {
                (
                    r["id"].as_str().expect("id").to_string(),
                    r["source"].as_str().expect("source").to_string(),
                    r["time_ms"].as_u64().expect("time_ms"),
                )
            })
            .collect()
    }

    /// `host:port` it listens on, to start it again at the same address.
    pub fn listen(&self) -> &str {
        self.base.trim_start_matches("http://")
    }

    /// Records of `kind` (`faces`, `plates`) in the embedded store.
    pub async fn records(&self, kind: &str) -> u64 {
        self.metric(&format!(
            "wayside_data_store_records{{backend=\"embedded\",kind=\"{kind}\"}}"
        ))
        .await
    }

    /// Polls until the store holds at least `n` records of `kind`; panics
    /// after `limit`.
    pub async fn wait_for_records(&self, kind: &str, n: u64, limit: std::time::Duration) {
        let start = std::time::Instant::now();
        loop {
            let got = self.records(kind).await;
            if got >= n {
                return;
            }
            assert!(
                start.elapsed() < limit,
                "the data API has {got} {kind} after {limit:?}, expected {n}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}

impl Drop for DataApi {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET base/healthz` as JSON.
pub async fn healthz(base: &str) -> serde_json::Value {
    reqwest::get(format!("{base}/healthz"))
        .await
        .expect("healthz")
        .json()
        .await
        .expect("healthz JSON")
}

/// A Mosquitto broker on a free loopback port, from a config file in a
/// temporary directory; SIGKILLed on drop.
pub struct Mosquitto {
    child: Child,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Mosquitto {
    /// Anonymous clients allowed.
    pub fn start() -> Mosquitto {
        Self::start_with("allow_anonymous true\n")
    }

    /// `conf` is added to a config with the listener and no persistence.
    pub fn start_with(conf: &str) -> Mosquitto {
        Self::configured(&format!("persistence false\n{conf}"))
    }

    /// Anonymous clients allowed, and sessions (subscriptions, QoS 1
    /// messages queued for a subscriber away) kept across a [`Self::stop`]
    /// and [`Self::restart`], as a production broker keeps them.
    pub fn start_persistent() -> Mosquitto {
        Self::configured("allow_anonymous true\npersistence true\n")
    }

    fn configured(conf: &str) -> Mosquitto {
        let dir = tempfile::tempdir().expect("temp dir");
        // Started as root, Mosquitto drops to its own user before it saves
        // its sessions there.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777))
            .expect("chmod");
        let port = free_port();
        std::fs::write(
            dir.path().join("mosquitto.conf"),
            format!(
                "listener {port} 127.0.0.1\npersistence_location {}/\n{conf}",
                dir.path().display()
            ),
        )
        .expect("mosquitto.conf");
        let child = Self::spawn(dir.path(), port);
        Mosquitto { child, port, dir }
    }

    fn spawn(dir: &Path, port: u16) -> Child {
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(dir.join("mosquitto.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto runs (scripts/setup.sh installs it)");
        wait_for_port(port);
        child
    }

    /// Stops the broker as an operator would (SIGTERM: a persistent broker
    /// saves its sessions) and waits for it to exit.
    pub fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }

    /// Starts it again on the same port with the same config.
    pub fn restart(&mut self) {
        self.child = Self::spawn(self.dir.path(), self.port);
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A certificate authority made for one test with Debian's `openssl`, and
/// server certificates it signs: TLS tested the way a box is deployed,
/// against a private CA it is told to trust.
pub struct TestCa {
    dir: tempfile::TempDir,
    /// The CA certificate (PEM) a client is given as its trust root.
    pub cert: PathBuf,
}

impl TestCa {
    pub fn new() -> TestCa {
        let dir = tempfile::tempdir().expect("temp dir");
        let cert = dir.path().join("ca.pem");
        openssl(
            dir.path(),
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=Wayside test CA",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
        TestCa { dir, cert }
    }

    /// A certificate for `127.0.0.1` and `localhost` signed by this CA:
    /// (certificate, key), both PEM.
    pub fn server(&self, name: &str) -> (PathBuf, PathBuf) {
        let d = self.dir.path();
        let (key, csr, cert) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
        );
        std::fs::write(
            d.join("ext.cnf"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
        )
        .expect("ext.cnf");
        openssl(
            d,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &csr,
                "-subj",
                "/CN=127.0.0.1",
            ],
        );
        openssl(
            d,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &cert,
                "-days",
                "2",
                "-extfile",
                "ext.cnf",
            ],
        );
        // Servers such as Mosquitto drop root for their own user before
        // reading the key: a throwaway key may be readable by all.
        use std::os::unix::fs::PermissionsExt;
        let readable = |p: &Path, mode| {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod")
        };
        readable(d, 0o755);
        readable(&d.join(&key), 0o644);
        (d.join(cert), d.join(key))
    }
}

impl Default for TestCa {
    fn default() -> Self {
        Self::new()
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs (scripts/setup.sh installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Waits up to 10 s for something to listen on `port`.
pub fn wait_for_port(port: u16) {
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("nothing listens on port {port} after 10 s");
}

/// An MQTT subscriber (rumqttc) collecting what arrives on `filter`.
pub struct MqttWatch {
    messages: std::sync::mpsc::Receiver<(String, String)>,
}

impl MqttWatch {
    /// Subscribes on `port` and returns once the broker has the
    /// subscription, so nothing published afterwards is missed.
    pub fn subscribe(port: u16, filter: &str) -> MqttWatch {
        let mut options =
            rumqttc::MqttOptions::new(format!("test-watch-{port}"), "127.0.0.1", port);
        options.set_keep_alive(std::time::Duration::from_secs(5));
        // A persistent session: a broker that keeps sessions (see
        // `Mosquitto::start_persistent`) queues what is published while
        // this subscriber reconnects after the broker's restart.
        options.set_clean_session(false);
        let (client, mut connection) = rumqttc::Client::new(options, 100);
        let filter = filter.to_string();
        let (tx, rx) = std::sync::mpsc::channel();
        let (subscribed_tx, subscribed) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for event in connection.iter() {
                match event {
                    // A broker without our session (the first connection,
                    // or one that forgot it) needs the subscription again.
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(ack)))
                        if !ack.session_present =>
                    {
                        let _ = client.try_subscribe(&filter, rumqttc::QoS::AtLeastOnce);
                    }
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_))) => {
                        let _ = subscribed_tx.send(());
                    }
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => {
                        let payload = String::from_utf8_lossy(&p.payload).to_string();
                        if tx.send((p.topic.clone(), payload)).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(200)),
                }
            }
        });
        subscribed
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("the broker acknowledges the subscription");
        MqttWatch { messages: rx }
    }

    /// The next message within `timeout`, as (topic, payload).
    pub fn next(&self, timeout: std::time::Duration) -> Option<(String, String)> {
        self.messages.recv_timeout(timeout).ok()
    }

    /// Messages until one on `topic` has `payload`, within `timeout`;
    /// `None` if it does not come.
    pub fn wait_for(
        &self,
        topic: &str,
        payload: &str,
        timeout: std::time::Duration,
    ) -> Option<Vec<(String, String)>> {
        let deadline = std::time::Instant::now() + timeout;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let m = self.next(left)?;
            let done = m.0 == topic && m.1 == payload;
            seen.push(m);
            if done {
                return Some(seen);
            }
        }
    }
}

/// The camera tests' RTSP server (`examples/rtsp_server.rs`) serving
/// `clip` at `rtsp://127.0.0.1:port/clip`; SIGKILLed on drop.
pub struct RtspServer {
    child: Child,
}

impl RtspServer {
    pub fn start(port: u16, clip: &Path) -> RtspServer {
        let mut child = Command::new(example("rtsp_server"))
            .arg(port.to_string())
            .arg(clip)
            .stdout(Stdio::piped())
            .spawn()
            .expect("rtsp_server starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("rtsp_server's first line");
        assert_eq!(line.trim(), "ready", "rtsp_server said {line:?}");
        RtspServer { child }
    }
}

impl Drop for RtspServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `ffmpeg` quietly (making test media); panics when it fails.
pub fn ffmpeg(args: &[&str]) {
    let ok = Command::new("ffmpeg")
        .args(["-loglevel", "error", "-y"])
        .args(args)
        .status()
        .expect("ffmpeg runs (scripts/setup.sh installs it)");
    assert!(ok.success(), "ffmpeg {args:?}");
}

/// Daemon config (for [`Daemon::start`]'s `extra`): faces found and
/// forwarded to the data API at `data_api`.
pub fn faces_config(data_api: &str) -> String {
    format!("[faces]\nenabled = true\n[data_api]\nurl = \"{data_api}\"\n")
}

/// POSTs the video at `path` to `/video` with `interval_ms`; asserts 200
/// and returns the answer.
pub async fn post_video(d: &Daemon, path: &Path, interval_ms: u64) -> serde_json::Value {
    let (status, body) = upload_video(&d.base, path, interval_ms).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// POSTs the video at `path` to `base/video`; the status and the JSON
/// answer (`Null` when the body is not JSON). Panics only when no answer
/// comes (the connection breaks).
pub async fn upload_video(base: &str, path: &Path, interval_ms: u64) -> (u16, serde_json::Value) {
    let name = path.file_name().unwrap().to_string_lossy().to_string();
    let form = reqwest::multipart::Form::new()
        .part(
            "video",
            reqwest::multipart::Part::bytes(std::fs::read(path).unwrap()).file_name(name),
        )
        .text("interval", interval_ms.to_string());
    let res = reqwest::Client::new()
        .post(format!("{base}/video"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let body = res.text().await.unwrap();
    (status, serde_json::from_str(&body).unwrap_or_default())
}

/// A vehicle waiting with a readable plate `plate`, 15 frames at 5 fps
/// (3 s), H.264 in MP4, in `dir`: a synthetic plate of the vision crate's
/// accuracy test on the Madrid minibus of bus.jpg, with the two men beside
/// it (`plate_clip` example; each frame its own pose, light and noise).
pub fn plate_clip(dir: &Path, plate: &str) -> PathBuf {
    let frames = dir.join("frames");
    let ok = Command::new(example("plate_clip"))
        .arg(&frames)
        .args([plate, "15"])
        .status()
        .expect("plate_clip runs");
    assert!(ok.success(), "plate_clip failed");
    let clip = dir.join("plate.mp4");
    ffmpeg(&[
        "-framerate",
        "5",
        "-i",
        &frames.join("frame_%03d.png").display().to_string(),
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        &clip.display().to_string(),
    ]);
    clip
}

/// `seconds` of the fetched photo `name` standing still, 5 fps, H.264 in
/// MP4 (padded to even sides, as yuv420p needs).
pub fn still_clip(dir: &Path, name: &str, seconds: u32) -> PathBuf {
    let out = dir.join("still.mp4");
    ffmpeg(&[
        "-loop",
        "1",
        "-framerate",
        "5",
        "-t",
        &seconds.to_string(),
        "-i",
        &media(name).display().to_string(),
        "-vf",
        "pad=ceil(iw/2)*2:ceil(ih/2)*2",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        &out.display().to_string(),
    ]);
    out
}

/// Three people, each in a place of their own (the faces tests: who is
/// who is in docs/FACES.md): Obama for 0–3 s on the left, Biden for
/// 3–6 s in the middle, Obama again (another photo) for 6–9 s on the
/// right. The three-segment clip, 1920×480 at 10 fps, H.264 in MP4.
pub fn people_clip(dir: &Path) -> PathBuf {
    let out = dir.join("people.mp4");
    let (o1, b, o2) = (media("obama.jpg"), media("biden.jpg"), media("obama2.jpg"));
    // Each photo fitted into one third of the frame, the rest black.
    let fit = |i: usize, x: u32| {
        format!(
            "[{i}]scale=640:480:force_original_aspect_ratio=decrease,\
             pad=1920:480:{x}+(640-iw)/2:(480-ih)/2,setsar=1,fps=10[s{i}]"
        )
    };
    let graph = format!(
        "{};{};{};[s0][s1][s2]concat=n=3:v=1:a=0,format=yuv420p[v]",
        fit(0, 0),
        fit(1, 640),
        fit(2, 1280)
    );
    let mut args: Vec<String> = Vec::new();
    for p in [&o1, &b, &o2] {
        args.extend(["-loop", "1", "-framerate", "10", "-t", "3", "-i"].map(String::from));
        args.push(p.display().to_string());
    }
    args.extend(
        [
            "-filter_complex",
            &graph,
            "-map",
            "[v]",
            "-c:v",
            "libx264",
            "-crf",
            "20",
        ]
        .map(String::from),
    );
    args.push(out.display().to_string());
    ffmpeg(&args.iter().map(String::as_str).collect::<Vec<_>>());
    out
}

/// The first `seconds` of vtest.avi (7 people walk in its first 10 s) as
/// H.264 MP4, at its own 10 fps and size, with a key frame a second so an
/// RTSP client can join at any time.
pub fn vtest_clip(dir: &Path, seconds: u32) -> PathBuf {
    vtest_as(
        dir,
        seconds,
        "mp4",
        &[
            "-c:v", "libx264", "-preset", "veryfast", "-g", "10", "-pix_fmt", "yuv420p",
        ],
    )
}

/// The same as H.265, as many IP cameras send it (with B-frames, which
/// x265 writes and few cameras do).
pub fn vtest_h265_clip(dir: &Path, seconds: u32) -> PathBuf {
    vtest_as(
        dir,
        seconds,
        "h265.mp4",
        &[
            "-c:v",
            "libx265",
            "-preset",
            "veryfast",
            "-x265-params",
            "keyint=10:log-level=warning",
            "-pix_fmt",
            "yuv420p",
        ],
    )
}

/// The same as Motion JPEG in a QuickTime file, as a USB or IP camera
/// sends it.
pub fn vtest_mjpeg_clip(dir: &Path, seconds: u32) -> PathBuf {
    vtest_as(
        dir,
        seconds,
        "mov",
        &["-c:v", "mjpeg", "-q:v", "5", "-pix_fmt", "yuvj420p"],
    )
}

fn vtest_as(dir: &Path, seconds: u32, ext: &str, codec: &[&str]) -> PathBuf {
    let out = dir.join(format!("vtest-{seconds}s.{ext}"));
    let src = media("vtest.avi");
    let seconds = seconds.to_string();
    let mut args = vec!["-i", src.to_str().unwrap(), "-t", &seconds, "-an"];
    args.extend(codec);
    args.push(out.to_str().unwrap());
    ffmpeg(&args);
    out
}

/// Polls `check` every 200 ms until it is true or `timeout` passes.
pub async fn eventually<F, Fut>(timeout: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{what}: not within {timeout:?}");
}

/// A small tmpfs mounted over a directory, to make a disk full on purpose;
/// unmounted on drop. Mounting needs root: [`Tmpfs::mount`] says so and
/// gives `None` elsewhere, and the tests that need one pass without it.
pub struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (`mount`'s `size=`, e.g. `1m`) over `path`,
    /// creating it; `None` (after saying why, for `test`) when that fails.
    pub fn mount(path: &Path, size: &str, test: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(path).expect("mount point");
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            eprintln!("SKIPPED {test}: mounting a tmpfs needs root");
            return None;
        }
        Some(Tmpfs {
            path: path.to_path_buf(),
        })
    }

    /// Fills what is left with a ballast file, up to the last byte.
    pub fn fill(&self) {
        use std::io::Write;
        let mut f = std::fs::File::create(self.ballast()).expect("ballast file");
        let block = vec![0u8; 64 << 10];
        let mut size = block.len();
        // Smaller and smaller writes, so not even a partial block is left.
        while size > 0 {
            match f.write(&block[..size]) {
                Ok(0) | Err(_) => size /= 2,
                Ok(_) => {}
            }
        }
        let _ = f.sync_all();
    }

    /// Deletes the ballast: the space is back.
    pub fn free(&self) {
        std::fs::remove_file(self.ballast()).expect("ballast removed");
    }

    fn ballast(&self) -> PathBuf {
        self.path.join("ballast")
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazily: a process killed a moment ago may still hold a file here.
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}
