//! Fault injection against the real binaries (issue 11): the daemon killed
//! at random moments of a `/video` job, full disks under the data API's
//! store and under the daemon's outbox, wall-clock jumps under a live
//! camera, and the MQTT broker away long enough to fill the bounded queue.
//! What is lost is counted by record id (faces) or window start (MQTT) on
//! the receiving side. docs/RELIABILITY.md has the table of faults.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use wayside_e2e::{
    Daemon, DataApi, Mosquitto, MqttWatch, Tmpfs, eventually, faces_config, ffmpeg, healthz, media,
    metric, people_clip, post_video, upload_video, vtest_clip,
};

/// The data API's `source` of an uploaded video (`forward.rs`).
fn upload_source(clip: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(clip)
        .output()
        .expect("sha256sum");
    format!("upload-{}", &String::from_utf8_lossy(&out.stdout)[..16])
}

/// The same pictures as `clip` in other bytes (a metadata tag), so the
/// daemon sees another video: another source, other record ids.
fn variant(clip: &Path, tag: &str) -> PathBuf {
    let out = clip.with_file_name(format!("{tag}.mp4"));
    ffmpeg(&[
        "-i",
        clip.to_str().unwrap(),
        "-c",
        "copy",
        "-metadata",
        &format!("comment={tag}"),
        out.to_str().unwrap(),
    ]);
    out
}

/// Faces in the data API grouped by source: their times (`time_ms`), after
/// checking that no id is stored twice, nor two records of one source at
/// one time, and that the search sees every stored record.
async fn faces_by_source(api: &DataApi) -> BTreeMap<String, BTreeSet<u64>> {
    let faces = api.faces().await;
    let ids: BTreeSet<&str> = faces.iter().map(|(id, _, _)| id.as_str()).collect();
    assert_eq!(ids.len(), faces.len(), "an id twice: {faces:?}");
    assert_eq!(api.records("faces").await, faces.len() as u64);
    let mut by_source: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
    for (_, source, t) in faces {
        assert!(
            by_source.entry(source).or_default().insert(t),
            "two records of one source at {t} ms"
        );
    }
    by_source
}

/// SplitMix64: the kill moments, reproducible from the printed seed.
struct Rng(u64);

impl Rng {
    /// From `WAYSIDE_FAULT_SEED` when set (to replay a failure), else the
    /// clock.
    fn seeded() -> Rng {
        let seed = std::env::var("WAYSIDE_FAULT_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        eprintln!("seed {seed} (replay with WAYSIDE_FAULT_SEED={seed})");
        Rng(seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % n.max(1)
    }
}

/// Nothing in the spool: every upload and annotated video of a killed job
/// was removed at the restart.
fn assert_spool_empty(d: &Daemon) {
    let left: Vec<_> = std::fs::read_dir(d.dir.path().join("spool"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "spool files left behind: {left:?}");
}

async fn wait_for_outbox_empty(d: &Daemon, limit: Duration) {
    let base = d.base.clone();
    eventually(limit, "the outbox drains", || {
        let base = base.clone();
        async move { metric(&base, "wayside_outbox_pending").await == 0 }
    })
    .await;
}

/// Kills a run: each run draws new moments, and a round costs about half
/// a job, so three keep the test within its 90 s on a busy 2-core box.
const ROUNDS: usize = 3;

/// A clip with faces is uploaded; the daemon is SIGKILLed at a random
/// moment between the start of the upload and the end of its forwarding,
/// and restarted on the same directory, `ROUNDS` times. Every record of an
/// answered job arrives once; those of killed jobs arrive at most once
/// each and are sightings of the clip; nothing is left in the spool.
#[tokio::test]
async fn kill_9_at_random_points_of_video_jobs() {
    let started = Instant::now();
    let mut rng = Rng::seeded();
    let tmp = tempfile::tempdir().unwrap();
    let clip = people_clip(tmp.path());
    let api = DataApi::start(&tmp.path().join("data"), "127.0.0.1:0", &[]);
    let extra = faces_config(&api.base);
    let mut d = Daemon::start(&extra).await;

    // One job left alone: what every clip gives, and how long it takes.
    let t = Instant::now();
    let v = post_video(&d, &clip, 1000).await;
    let job = t.elapsed();
    let faces = v["faces_forwarded"].as_u64().unwrap();
    assert!(faces >= 3, "{v}");
    let mut answered = vec![upload_source(&clip)];
    let mut killed = Vec::new();
    eprintln!("undisturbed job: {job:?}, {faces} faces");

    for round in 1..=ROUNDS {
        let clip = variant(&clip, &format!("round-{round}"));
        let delay = Duration::from_millis(rng.below(job.as_millis() as u64 + 1000));
        let (base, path) = (d.base.clone(), clip.clone());
        let upload = tokio::spawn(async move { upload_video(&base, &path, 1000).await });
        tokio::time::sleep(delay).await;
        let answer = if upload.is_finished() {
            Some(upload.await.unwrap())
        } else {
            // No client panic when the daemon dies under it.
            upload.abort();
            None
        };
        let dir = d.kill();
        let t = Instant::now();
        d = Daemon::start_in(dir, &extra).await;
        let restart = t.elapsed();
        assert_eq!(healthz(&d.base).await["status"], "ok");
        assert_spool_empty(&d);
        let what = match answer {
            Some((status, body)) => {
                assert_eq!(status, 200, "{body}");
                assert_eq!(body["faces_forwarded"], faces, "{body}");
                answered.push(upload_source(&clip));
                "after its answer"
            }
            None => {
                killed.push(upload_source(&clip));
                "during the job"
            }
        };
        eprintln!(
            "round {round}: killed {delay:?} after the upload started ({what}), healthy again in {restart:?}"
        );
        wait_for_outbox_empty(&d, Duration::from_secs(30)).await;
    }

    let stored = faces_by_source(&api).await;
    let reference = stored
        .get(&answered[0])
        .cloned()
        .expect("the undisturbed job's faces");
    assert_eq!(reference.len() as u64, faces);
    for source in &answered {
        assert_eq!(
            stored.get(source),
            Some(&reference),
            "an answered job's faces, each once: {source}"
        );
    }
    for (source, times) in &stored {
        assert!(
            answered.contains(source) || killed.contains(source),
            "unknown source {source}"
        );
        assert!(
            times.is_subset(&reference),
            "a killed job forwards sightings of the clip only: {times:?}"
        );
    }
    let partial: Vec<usize> = killed
        .iter()
        .map(|s| stored.get(s).map_or(0, BTreeSet::len))
        .collect();
    assert_eq!(d.metric("wayside_outbox_dead_letters").await, 0);
    eprintln!(
        "answered {} jobs, killed {} (faces that reached the data API: {partial:?} of {faces}); {:?} in all",
        answered.len(),
        killed.len(),
        started.elapsed()
    );
}

/// A face record as the outbox sends it, its picture at `pic`.
fn face_record(id: &str, pic: &Value) -> Value {
    let mut vector = vec![0.0f32; 512];
    vector[1] = 1.0;
    json!({"id": id, "face_vector": vector, "pic": pic, "time_ms": 0,
           "source": "before", "captured_at": "2026-11-29T08:00:00Z"})
}

/// A JSON 507 that says so.
async fn assert_507(res: reqwest::Response) {
    assert_eq!(res.status(), 507);
    let e: Value = res.json().await.expect("a JSON error");
    assert!(e["error"].as_str().unwrap().contains("no space"), "{e}");
}

/// The data API's store on a small tmpfs filled with a ballast file:
/// ingest answers a JSON 507, the daemon's outbox keeps retrying, searches
/// keep working, and once the ballast is gone every face arrives once; a
/// SIGKILL and a restart afterwards find the store intact.
#[tokio::test]
async fn a_full_data_api_disk_is_a_507_and_the_outbox_delivers_when_space_is_back() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let Some(disk) = Tmpfs::mount(&data, "8m", "a_full_data_api_disk") else {
        return;
    };
    let clip = people_clip(tmp.path());
    let api = DataApi::start(&data, "127.0.0.1:0", &[]);
    let jpeg = std::fs::read(media("obama.jpg")).unwrap();
    let pic = api.put_media(&jpeg, "face.jpg", None).await["url"].clone();
    api.ingest("faces", &face_record("before", &pic), None)
        .await;
    disk.fill();

    let post = |path: &str| reqwest::Client::new().post(format!("{}{path}", api.base));
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(std::fs::read(media("bus.jpg")).unwrap())
            .file_name("car.jpg"),
    );
    assert_507(post("/media").multipart(form).send().await.unwrap()).await;
    // With its picture already stored, the row itself is refused.
    let res = post("/faces").json(&face_record("full", &pic)).send().await;
    assert_507(res.unwrap()).await;

    let extra = format!(
        "{}[outbox]\ndir = \"{}\"\nretry_min_ms = 100\nretry_max_ms = 1000\n",
        faces_config(&api.base),
        tmp.path().join("outbox").display()
    );
    let d = Daemon::start(&extra).await;
    let v = post_video(&d, &clip, 1000).await;
    let faces = v["faces_forwarded"].as_u64().unwrap();
    assert!(faces >= 3, "{v}");
    let base = d.base.clone();
    eventually(Duration::from_secs(20), "the outbox retries", || {
        let base = base.clone();
        async move { metric(&base, "wayside_outbox_retried_total").await >= 3 }
    })
    .await;
    assert_eq!(d.metric("wayside_outbox_pending").await, faces);
    assert_eq!(d.metric("wayside_outbox_dead_letters").await, 0);
    // Searches go on: the record from before the disk filled is found.
    let stored = faces_by_source(&api).await;
    assert_eq!(stored.keys().collect::<Vec<_>>(), ["before"]);

    disk.free();
    let freed = Instant::now();
    api.wait_for_records("faces", faces + 1, Duration::from_secs(30))
        .await;
    let delivered_in = freed.elapsed();
    wait_for_outbox_empty(&d, Duration::from_secs(10)).await;
    let stored = faces_by_source(&api).await;
    let source = upload_source(&clip);
    assert_eq!(stored[&source].len() as u64, faces, "every face once");
    let retried = d.metric("wayside_outbox_retried_total").await;
    eprintln!(
        "{faces} faces delivered {delivered_in:?} after the space came back; {retried} retries while full"
    );

    // A crash afterwards: SQLite finds its file intact, the restart serves
    // every record.
    let listen = api.listen().to_string();
    drop(api);
    assert_sqlite_intact(&data.join("wayside.db"));
    let api = DataApi::start(&data, &listen, &[]);
    assert_eq!(faces_by_source(&api).await, stored);
    drop(api);
    drop(disk);
}

/// The daemon's outbox on a small tmpfs filled with a ballast file: a job
/// whose faces cannot be stored answers a JSON 507 instead of a success,
/// the refusals are counted in `/metrics`, and once the ballast is gone
/// the same upload succeeds and its faces arrive once, from an outbox
/// SQLite finds intact.
#[tokio::test]
async fn a_full_outbox_disk_is_a_507_and_nothing_is_claimed() {
    let tmp = tempfile::tempdir().unwrap();
    let clip = people_clip(tmp.path());
    let api = DataApi::start(&tmp.path().join("data"), "127.0.0.1:0", &[]);
    let dir = tempfile::tempdir().unwrap();
    let outbox = dir.path().join("outbox");
    let Some(disk) = Tmpfs::mount(&outbox, "2m", "a_full_outbox_disk") else {
        return;
    };
    let d = Daemon::start_in(dir, &faces_config(&api.base)).await;
    disk.fill();

    let (status, body) = upload_video(&d.base, &clip, 1000).await;
    assert_eq!(status, 507, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("no space"),
        "{body}"
    );
    let refused = d.metric("wayside_outbox_refused_total").await;
    assert!(refused >= 3, "{refused} refusals counted");
    assert_eq!(d.metric("wayside_outbox_accepted_total").await, 0);
    assert_eq!(healthz(&d.base).await["status"], "ok");
    assert_spool_empty(&d);

    disk.free();
    let v = post_video(&d, &clip, 1000).await;
    let faces = v["faces_forwarded"].as_u64().unwrap();
    assert!(faces >= 3, "{v}");
    api.wait_for_records("faces", faces, Duration::from_secs(30))
        .await;
    wait_for_outbox_empty(&d, Duration::from_secs(10)).await;
    let stored = faces_by_source(&api).await;
    assert_eq!(stored[&upload_source(&clip)].len() as u64, faces);
    eprintln!("{refused} faces refused while full (507); {faces} forwarded once space was back");

    let dir = d.kill();
    assert_sqlite_intact(&outbox.join("outbox.db"));
    let d = Daemon::start_in(dir, &faces_config(&api.base)).await;
    assert_eq!(d.metric("wayside_outbox_pending").await, 0);
    drop(d);
    drop(disk);
}

/// SQLite's own check of a database file left by a killed process.
fn assert_sqlite_intact(db: &Path) {
    let check = Command::new("sqlite3")
        .arg(db)
        .arg("PRAGMA integrity_check")
        .output()
        .expect("sqlite3 runs");
    assert_eq!(
        String::from_utf8_lossy(&check.stdout).trim(),
        "ok",
        "{}",
        db.display()
    );
}

/// libfaketime, as Debian's `faketime` package installs it.
fn libfaketime() -> String {
    let found = std::fs::read_dir("/usr/lib")
        .unwrap()
        .flatten()
        .map(|e| e.path().join("faketime/libfaketime.so.1"))
        .find(|p| p.exists());
    found
        .expect("libfaketime is missing: scripts/setup.sh installs `faketime`")
        .display()
        .to_string()
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// A window as received: its start, and when it arrived (the test's own,
/// unfaked, clocks).
struct Arrival {
    ts: u64,
    at: Instant,
    at_unix_ms: u64,
}

/// Receives windows on `watch` into `into` for `period`, or until `done`
/// says enough.
fn collect(
    watch: &MqttWatch,
    period: Duration,
    into: &mut Vec<Arrival>,
    done: impl Fn(&[Arrival]) -> bool,
) {
    let until = Instant::now() + period;
    while !done(into)
        && let Some((_, payload)) = watch.next(until.saturating_duration_since(Instant::now()))
    {
        let w: Value = serde_json::from_str(&payload).expect("counts are JSON");
        into.push(Arrival {
            ts: w["ts"].as_u64().expect("ts"),
            at: Instant::now(),
            at_unix_ms: unix_ms(),
        });
    }
}

/// Windows the daemon published, from its log (the camera logs each one
/// at debug level, `WINDOW_LOG`): the line's time (the daemon's wall
/// clock, RFC 3339) and the window's `ts`.
fn logged_windows(d: &Daemon) -> Vec<(String, u64)> {
    d.log()
        .lines()
        .filter(|l| l.contains("window ") && l.contains("\"ts\":"))
        .map(|line| {
            // The line starts with the time, maybe after a colour code.
            let stamp = line
                .split(|c: char| c.is_whitespace() || c == '\u{1b}')
                .find_map(|w| w.find("20").map(|i| w[i..].to_string()))
                .expect("a time stamp");
            let ts = line
                .split("\"ts\":")
                .nth(1)
                .and_then(|r| r.split([',', '}']).next())
                .and_then(|t| t.parse().ok())
                .expect("ts");
            (stamp, ts)
        })
        .collect()
}

/// `RUST_LOG` that has the camera log every window it publishes.
const WINDOW_LOG: (&str, &str) = ("RUST_LOG", "info,wayside::camera=debug");

/// How far the daemon's wall clock was from the true one when it
/// published its latest window, in seconds: the time its log line carries
/// (the daemon's `SystemTime`) less the window's end (on the true clock,
/// as the other assertions check). Hyper's `Date` header cannot tell: it
/// is cached until the wall clock passes the next second, which after a
/// step back is hours away.
fn daemon_clock_offset_s(d: &Daemon) -> i64 {
    let (stamp, ts) = logged_windows(d)
        .pop()
        .expect("a window in the daemon's log");
    let out = Command::new("date")
        .args(["-d", &stamp, "+%s"])
        .output()
        .expect("date");
    let logged: i64 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("not a time: {stamp:?}"));
    logged - (ts + CLOCK_WINDOW_MS) as i64 / 1000
}

const CLOCK_WINDOW_MS: u64 = 1000;
const PHASE: Duration = Duration::from_secs(6);

/// The daemon's wall clock jumps forward an hour and back two while a
/// file camera publishes 1 s windows: the cadence holds (no burst, no
/// gap), no window published is lost or repeated, and `ts` stays on the grid the
/// camera started on (ARCHITECTURE.md: camera time is monotonic from the
/// first window), so it keeps following the true time, not the jumps.
#[tokio::test(flavor = "multi_thread")]
async fn clock_jumps_leave_the_window_cadence_alone() {
    let broker = Mosquitto::start();
    let scratch = tempfile::tempdir().unwrap();
    let clip = vtest_clip(scratch.path(), 12);
    let clock = scratch.path().join("faketime");
    std::fs::write(&clock, "+0\n").unwrap();
    let watch = MqttWatch::subscribe(broker.port, "wayside/clock-box/lab/counts");
    let lib = libfaketime();
    let env = [
        ("LD_PRELOAD", lib.as_str()),
        ("FAKETIME_TIMESTAMP_FILE", clock.to_str().unwrap()),
        ("FAKETIME_NO_CACHE", "1"),
        // Only the wall clock jumps, as with a step of NTP or an operator.
        ("DONT_FAKE_MONOTONIC", "1"),
        // Each window is logged with the daemon's wall-clock time.
        WINDOW_LOG,
    ];
    let d = Daemon::start_with_env(
        tempfile::tempdir().unwrap(),
        &format!(
            "[mqtt]\nurl = \"{}\"\ndevice = \"clock-box\"\n\
             [[camera]]\nname = \"lab\"\nsource = \"file:{}\"\nwindow_ms = {CLOCK_WINDOW_MS}\n",
            broker.url(),
            clip.display()
        ),
        &env,
    )
    .await;
    let mut windows = Vec::new();
    // The first window, then a steady phase.
    collect(&watch, Duration::from_secs(15), &mut windows, |w| {
        w.len() >= 3
    });
    assert!(windows.len() >= 3, "{} windows within 15 s", windows.len());
    let mut phases = vec![windows.len()];
    assert!(daemon_clock_offset_s(&d).abs() < 30);
    for (offset, expect_s) in [("+3600", 3600), ("-3600", -3600)] {
        std::fs::write(&clock, format!("{offset}\n")).unwrap();
        collect(&watch, PHASE, &mut windows, |_| false);
        phases.push(windows.len());
        let seen = daemon_clock_offset_s(&d);
        assert!(
            (seen - expect_s).abs() < 30,
            "the daemon's clock was {seen} s off, {expect_s} s expected"
        );
    }

    // Every window the camera published arrived, once, in order. (A window
    // in which no frame was analysed, the box too busy, is not published:
    // the grid may skip one, which is load, not the clock.)
    let ts: Vec<u64> = windows.iter().map(|w| w.ts).collect();
    let published: Vec<u64> = logged_windows(&d)
        .into_iter()
        .map(|(_, t)| t)
        .filter(|t| (ts[0]..=*ts.last().unwrap()).contains(t))
        .collect();
    assert_eq!(ts, published, "none lost, none repeated");
    let steps: Vec<u64> = ts.windows(2).map(|p| p[1] - p[0]).collect();
    assert!(
        steps
            .iter()
            .all(|&s| s % CLOCK_WINDOW_MS == 0 && (1..=3).contains(&(s / CLOCK_WINDOW_MS))),
        "on the grid, in order, no jump: {ts:?}"
    );
    let skipped: u64 = steps.iter().map(|s| s / CLOCK_WINDOW_MS - 1).sum();
    let gaps: Vec<u64> = windows
        .windows(2)
        .map(|p| (p[1].at - p[0].at).as_millis() as u64)
        .collect();
    let max_gap = gaps.iter().copied().max().unwrap_or(0);
    assert!(
        max_gap < 4 * CLOCK_WINDOW_MS,
        "a gap of {max_gap} ms: {gaps:?}"
    );
    // Each 6 s phase after a jump holds about six windows: no burst of the
    // hour skipped, no wait for the hour repeated.
    for pair in phases.windows(2).skip(1) {
        let n = pair[1] - pair[0];
        assert!(
            (3..=9).contains(&n),
            "{n} windows in a {PHASE:?} phase: {gaps:?}"
        );
    }
    // A window leaves once it has closed: its start is a little over a
    // window before its arrival, by the true clock, whatever the daemon's
    // wall clock says.
    for w in &windows {
        let age = w.at_unix_ms as i64 - w.ts as i64;
        assert!(
            (CLOCK_WINDOW_MS as i64..CLOCK_WINDOW_MS as i64 + 5000).contains(&age),
            "window {} arrived {age} ms after its start",
            w.ts
        );
    }
    eprintln!(
        "{} windows across a +1 h and a -2 h jump, phases {phases:?}, max gap {max_gap} ms, \
         {skipped} windows without a frame",
        windows.len()
    );
}

/// The camera's window in the outage tests.
const OUTAGE_WINDOW_MS: u64 = 1000;

/// The broker stopped for `outage` while a camera publishes 1 s windows
/// into a queue of `bound`: the windows the camera published that did not
/// arrive are exactly as many as `/metrics` counts dropped, and are the
/// oldest of the outage; the newest (up to `bound`) arrive after the
/// restart, in order, none twice; new windows flow again. What the camera
/// published is read from its log: a window without any analysed frame
/// (the box too busy for a whole window) is not published at all
/// (ARCHITECTURE.md), which is not the queue's loss.
async fn broker_outage(outage: Duration, bound: u64) {
    let mut broker = Mosquitto::start_persistent();
    let scratch = tempfile::tempdir().unwrap();
    let clip = vtest_clip(scratch.path(), 12);
    let watch = MqttWatch::subscribe(broker.port, "wayside/outage-box/lab/counts");
    let d = Daemon::start_with_env(
        tempfile::tempdir().unwrap(),
        &format!(
            "[mqtt]\nurl = \"{}\"\ndevice = \"outage-box\"\nkeepalive_s = 5\nmax_buffered = {bound}\n\
             reconnect_min_ms = 200\nreconnect_max_ms = 2000\n\
             [[camera]]\nname = \"lab\"\nsource = \"file:{}\"\nwindow_ms = {OUTAGE_WINDOW_MS}\n",
            broker.url(),
            clip.display()
        ),
        &[WINDOW_LOG],
    )
    .await;
    let mut windows = Vec::new();
    collect(&watch, Duration::from_secs(20), &mut windows, |w| {
        w.len() >= 3
    });
    assert!(windows.len() >= 3, "{} windows within 20 s", windows.len());
    // Stopped mid-window, with nothing in flight: a QoS 1 message cut off
    // between its delivery and its PUBACK is sent again, at least once by
    // design (its `ts` tells the copy), and that is not this test's fault.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let stop_ms = unix_ms();
    let closed_before_stop = |ts: u64| ts + OUTAGE_WINDOW_MS <= stop_ms;
    broker.stop();
    let before = windows.len();
    tokio::time::sleep(outage).await;
    broker.restart();
    let back = Instant::now();
    let back_ms = unix_ms();
    let fresh = |w: &[Arrival]| w.iter().filter(|w| w.ts >= back_ms).count();
    collect(&watch, Duration::from_secs(60), &mut windows, |w| {
        fresh(w) >= 3
    });
    assert!(fresh(&windows) >= 3, "windows do not flow again");
    // When the box lags, a window can still be in flight at the stop after
    // all: published before it, its PUBACK cut off, it is sent again after
    // the restart, and the subscriber can get it twice (seen once in a
    // full test run). At least once is QoS 1's promise, so one repeat of a
    // window published before the stop is allowed, and left out of what
    // follows.
    let mut seen = BTreeSet::new();
    let mut repeated = Vec::new();
    windows.retain(|w| {
        let first = seen.insert(w.ts);
        if !first {
            repeated.push(w.ts);
        }
        first
    });
    assert!(
        repeated.len() <= 1 && repeated.iter().all(|&ts| closed_before_stop(ts)),
        "received twice: {repeated:?} (broker stopped at {stop_ms})"
    );
    let recovered = windows[before..]
        .first()
        .map(|w| w.at - back)
        .expect("a window after the restart");

    let received: Vec<u64> = windows.iter().map(|w| w.ts).collect();
    assert!(
        received.windows(2).all(|p| p[0] < p[1]),
        "in order, none twice: {received:?}"
    );
    let last = *received.last().unwrap();
    let published: Vec<u64> = logged_windows(&d)
        .into_iter()
        .map(|(_, ts)| ts)
        .filter(|&ts| ts >= received[0] && ts <= last)
        .collect();
    let lost: Vec<u64> = published
        .iter()
        .copied()
        .filter(|ts| !received.contains(ts))
        .collect();
    let dropped = d.metric("wayside_mqtt_dropped_total").await;
    assert_eq!(
        lost.len() as u64,
        dropped,
        "published but not received: {lost:?}"
    );
    // The last window closed before the stop: the outage's windows are the
    // ones after it. The oldest of them went; what was kept is newer than
    // all of them.
    let down_ts = *received
        .iter()
        .filter(|&&ts| closed_before_stop(ts))
        .max()
        .expect("windows before the stop");
    let kept: Vec<u64> = received
        .iter()
        .copied()
        .filter(|&ts| ts > down_ts && ts < back_ms)
        .collect();
    assert!(
        lost.iter()
            .all(|&t| t > down_ts && kept.iter().all(|&k| t < k)),
        "lost {lost:?}, kept {kept:?}"
    );
    assert!(
        !kept.is_empty() && kept.len() as u64 <= bound + 1,
        "{} windows of the outage kept, bound {bound}",
        kept.len()
    );
    // The queue did fill: all but the newest of the outage went.
    let during = published
        .iter()
        .filter(|&&t| t > down_ts && t < back_ms)
        .count() as u64;
    assert!(
        dropped > 0 && dropped + bound + 1 >= during,
        "{dropped} dropped of {during} published in the outage"
    );
    let grid = (last - received[0]) / OUTAGE_WINDOW_MS + 1;
    eprintln!(
        "outage {outage:?}: {} windows published ({during} in the outage), {dropped} dropped and \
         counted (= published but not received), {} kept (bound {bound}), first kept window {recovered:?} after the \
         broker was back; {} windows of the grid not published (no frame analysed in them)",
        published.len(),
        kept.len(),
        grid - published.len() as u64
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn broker_down_with_the_mqtt_queue_full() {
    broker_outage(Duration::from_secs(16), 5).await;
}

/// The same with a 10-minute outage; run by hand (`--ignored`).
#[tokio::test(flavor = "multi_thread")]
#[ignore = "a 10-minute outage: run by hand with --ignored"]
async fn broker_down_ten_minutes() {
    broker_outage(Duration::from_secs(600), 60).await;
}
