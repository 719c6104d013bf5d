//! The daemon's one configuration tree: TOML with serde defaults, validated
//! once at start. Every error names the field it is about.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use wayside_outbox::OutboxConfig;
use wayside_vision::classes::ClassMap;
use wayside_vision::count::CountConfig;
use wayside_vision::detect::DetectorConfig;
use wayside_vision::face::QualityConfig;
use wayside_vision::face::detect::FaceDetectorConfig;
use wayside_vision::face::keeper::KeeperConfig;
use wayside_vision::plate::{
    GrammarConfig, PlateDetectorConfig, RectifyConfig, RegionConfig, VoteConfig,
};
use wayside_vision::runtime::cpu::CpuFeatures;
use wayside_vision::track::TrackerConfig;

use crate::camera::CameraConfig;
use crate::mqtt::MqttConfig;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub media: MediaConfig,
    pub video: VideoConfig,
    pub models: ModelsConfig,
    pub detector: DetectorConfig,
    pub tracker: TrackerConfig,
    pub count: CountConfig,
    pub classes: ClassMap,
    pub faces: FacesConfig,
    pub plates: PlatesConfig,
    pub data_api: DataApiConfig,
    pub outbox: OutboxConfig,
    pub mqtt: MqttConfig,
    /// `[[camera]]` tables (camera/mod.rs).
    #[serde(rename = "camera", skip_serializing_if = "Vec::is_empty")]
    pub cameras: Vec<CameraConfig>,
}

/// Faces in videos and cameras (docs/FACES.md has the why of each default).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FacesConfig {
    /// Find, embed and forward faces while videos are processed.
    /// `/face-detect` works either way.
    pub enabled: bool,
    /// Manifest id of the face detector.
    pub detector_model: String,
    /// Manifest id of the embedder: "face-embedder" or "face-embedder-sface".
    pub embedder: String,
    pub detector: FaceDetectorConfig,
    /// The face tracker (one per stream, apart from the object tracker).
    pub tracker: TrackerConfig,
    pub quality: QualityConfig,
    pub keeper: KeeperConfig,
    /// The forwarded picture is the face box grown by this fraction of its
    /// size on each side, so a person sees the head, not a cut-out.
    pub picture_margin: f32,
}

impl Default for FacesConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            detector_model: "face-detector".into(),
            embedder: "face-embedder".into(),
            // Lower than the photo default (0.7) so that ByteTrack's second
            // stage holds a face through a turned head; the quality gate
            // still refuses weak faces.
            detector: FaceDetectorConfig {
                min_score: 0.5,
                ..FaceDetectorConfig::default()
            },
            tracker: TrackerConfig {
                track_thresh: 0.7,
                new_track_thresh: 0.7,
                ..TrackerConfig::default()
            },
            quality: QualityConfig::default(),
            keeper: KeeperConfig::default(),
            picture_margin: 0.4,
        }
    }
}

/// Licence plates of tracked vehicles (docs/PLATES.md has the why of each
/// default).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PlatesConfig {
    /// Read, vote and forward the plates of vehicles in videos and cameras.
    /// `/licence-plate` searches text and works either way.
    pub enabled: bool,
    /// Manifest id of the plate detector.
    pub detector_model: String,
    /// Manifest id of the recogniser; its `[model.output]` names the
    /// dictionary file.
    pub recognizer: String,
    /// At most this many vehicles are read per tracked frame: a read costs
    /// about what the frame's object detection does.
    pub reads_per_frame: usize,
    /// A vehicle is read at most this many times: enough frames for a
    /// vote, without spending a read a frame on a parked vehicle whose
    /// plate cannot be read.
    pub max_attempts: u32,
    /// The forwarded picture is the vehicle box grown by this fraction.
    pub picture_margin: f32,
    pub detector: PlateDetectorConfig,
    pub rectify: RectifyConfig,
    pub grammar: GrammarConfig,
    pub region: RegionConfig,
    pub vote: VoteConfig,
}

impl Default for PlatesConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            detector_model: "plate-detector".into(),
            recognizer: "plate-recognizer".into(),
            reads_per_frame: 1,
            max_attempts: 10,
            picture_margin: 0.05,
            detector: PlateDetectorConfig::default(),
            rectify: RectifyConfig::default(),
            grammar: GrammarConfig::default(),
            region: RegionConfig::default(),
            vote: VoteConfig::default(),
        }
    }
}

/// The central data API (`wayside-data`): where faces and plates are
/// forwarded through the outbox, and what `/face-detect` searches.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DataApiConfig {
    pub url: String,
    /// Bound on a search request, connect to last byte; past it the client
    /// gets 504.
    pub timeout_ms: u64,
    /// Bearer token for the data API; the outbox uses it too unless
    /// `outbox.auth_token` is set. Also `WAYSIDE_DATA_API_TOKEN`, so it can
    /// live in the unit's 0600 environment file.
    pub auth_token: Option<String>,
    /// PEM file of the CA(s) that sign an `https://` data API's
    /// certificate (a private CA); the outbox uses it too unless
    /// `outbox.ca_file` is set.
    pub ca_file: Option<PathBuf>,
}

impl Default for DataApiConfig {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:8090".into(),
            timeout_ms: 5_000,
            auth_token: None,
            ca_file: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Loopback by default: a roadside box is not exposed unless asked.
    pub listen: String,
    /// Base of the URLs handed out (`processed_video_url`), as clients reach us.
    pub public_url: String,
    pub max_upload_bytes: u64,
    /// Video jobs running at once; more get 503 with Retry-After.
    pub max_jobs: usize,
    /// Uploads are spooled here, never held in memory.
    pub spool_dir: PathBuf,
    /// Photos (`/face-detect`) worked on at once; more wait up to 10 s,
    /// then get 503 with Retry-After.
    pub max_photo_jobs: usize,
    /// Largest photo `/face-detect` takes.
    pub max_image_bytes: u64,
    /// Largest photo in pixels (width × height), checked from the header
    /// before decoding: a small file can declare a huge image.
    pub max_image_pixels: u64,
    /// Bearer tokens accepted on every endpoint but `/healthz` and the web
    /// page's own files; empty = no auth (a loopback-only box). Also
    /// `WAYSIDE_AUTH_TOKENS` (comma-separated), so tokens can live in the
    /// unit's 0600 environment file instead of the readable config.
    pub auth_tokens: Vec<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            public_url: "http://127.0.0.1:8080".into(),
            max_upload_bytes: 1 << 30,
            max_jobs: 1,
            spool_dir: PathBuf::from("var/spool"),
            max_photo_jobs: 2,
            max_image_bytes: 20 << 20,
            max_image_pixels: 50_000_000,
            auth_tokens: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MediaConfig {
    /// Annotated videos, content-addressed.
    pub dir: PathBuf,
    /// Oldest files go first past this total size.
    pub max_bytes: u64,
    /// Files older than this are removed.
    pub max_age_days: u64,
}

impl Default for MediaConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("var/media"),
            max_bytes: 10 << 30,
            max_age_days: 30,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VideoConfig {
    /// The tracker sees at least this many frames a second (API.md).
    pub min_track_fps: f64,
    /// Frames of one video detected at once, each on a thread of its own
    /// (tracking takes them back in order). Unset: the machine's cores
    /// divided by `models.threads`.
    pub detect_workers: Option<usize>,
    /// Threads of one stream's software video decoder; 0 lets libav choose
    /// (a thread per core and one more, each holding frames). One decodes
    /// 1080p faster than a camera sends it, in less memory; a box that
    /// takes 4K uploads at high frame rates gains from more.
    pub decode_threads: u32,
    pub max_duration_s: u64,
    /// Longest side in pixels.
    pub max_dimension: u32,
    pub jpeg_quality: u8,
}

impl VideoConfig {
    /// `detect_workers`, or as many as fit the cores beside `models_threads`.
    pub fn detect_workers(&self, models_threads: usize) -> usize {
        self.detect_workers.unwrap_or_else(|| {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            (cores / models_threads.max(1)).max(1)
        })
    }
}

impl Default for VideoConfig {
    fn default() -> Self {
        Self {
            min_track_fps: 5.0,
            detect_workers: None,
            decode_threads: 1,
            max_duration_s: 3600,
            max_dimension: 3840,
            jpeg_quality: 80,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelsConfig {
    /// Where `scripts/setup-models.sh` put the model files.
    pub dir: PathBuf,
    /// The manifest pinning every model file by sha256.
    pub manifest: PathBuf,
    /// Manifest id of the detector: "detector" (f32) or "detector-int8".
    pub detector: String,
    /// Cores tract may use inside one inference.
    pub threads: usize,
    /// Instruction-set features tract's kernels may use: "auto" (tract's
    /// probe, less AVX-512 on AMD cores with one 512-bit FMA unit, where it
    /// loses), "native" (tract's probe) or edits such as "-avx512f".
    pub cpu_features: CpuFeatures,
}

impl Default for ModelsConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("models/cache"),
            manifest: PathBuf::from("models/manifest.toml"),
            detector: "detector".into(),
            threads: 1,
            cpu_features: CpuFeatures::Auto,
        }
    }
}

impl Config {
    /// Read `path` (or defaults when `None`), then apply `WAYSIDE_MODELS_DIR`
    /// so test scripts and packaging can move the model cache.
    pub fn load(path: Option<&Path>) -> Result<Self> {
        let mut config: Config = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p)
                    .with_context(|| format!("reading config {}", p.display()))?;
                toml::from_str(&text).with_context(|| format!("config {}", p.display()))?
            }
            None => Config::default(),
        };
        if let Some(dir) = std::env::var_os("WAYSIDE_MODELS_DIR") {
            config.models.dir = dir.into();
        }
        if let Ok(token) = std::env::var("WAYSIDE_DATA_API_TOKEN") {
            config.data_api.auth_token = Some(token.trim().to_string()).filter(|t| !t.is_empty());
        }
        if let Ok(tokens) = std::env::var("WAYSIDE_AUTH_TOKENS") {
            config.server.auth_tokens = tokens
                .split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(String::from)
                .collect();
        }
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<()> {
        let d = &self.detector;
        if !(d.min_score > 0.0 && d.min_score < 1.0) {
            bail!(
                "detector.min_score: must be between 0 and 1, got {}",
                d.min_score
            );
        }
        if !(d.nms_iou > 0.0 && d.nms_iou <= 1.0) {
            bail!("detector.nms_iou: must be in (0, 1], got {}", d.nms_iou);
        }
        if self.models.threads == 0 || self.models.threads > 64 {
            bail!(
                "models.threads: must be 1..=64, got {}",
                self.models.threads
            );
        }
        self.classes.resolve().context("classes")?;
        self.tracker.validate()?;
        self.count.validate()?;
        let v = &self.video;
        if !(v.min_track_fps >= 1.0 && v.min_track_fps <= 60.0) {
            bail!(
                "video.min_track_fps: must be 1..=60, got {}",
                v.min_track_fps
            );
        }
        if let Some(n) = v.detect_workers
            && !(1..=64).contains(&n)
        {
            bail!("video.detect_workers: must be 1..=64, got {n}");
        }
        if v.decode_threads > 64 {
            bail!(
                "video.decode_threads: must be 0..=64, got {}",
                v.decode_threads
            );
        }
        if v.max_duration_s == 0 {
            bail!("video.max_duration_s: must be positive");
        }
        if !(1..=100).contains(&v.jpeg_quality) {
            bail!(
                "video.jpeg_quality: must be 1..=100, got {}",
                v.jpeg_quality
            );
        }
        let s = &self.server;
        s.listen
            .parse::<std::net::SocketAddr>()
            .with_context(|| format!("server.listen: {:?} is not an address:port", s.listen))?;
        if !(s.public_url.starts_with("http://") || s.public_url.starts_with("https://")) {
            bail!(
                "server.public_url: must start with http:// or https://, got {:?}",
                s.public_url
            );
        }
        if s.max_jobs == 0 {
            bail!("server.max_jobs: must be at least 1");
        }
        if s.max_upload_bytes == 0 {
            bail!("server.max_upload_bytes: must be positive");
        }
        if s.max_photo_jobs == 0 {
            bail!("server.max_photo_jobs: must be at least 1");
        }
        if s.max_image_bytes == 0 {
            bail!("server.max_image_bytes: must be positive");
        }
        if let Some(i) = wayside_service::auth::too_short(&s.auth_tokens) {
            bail!(
                "server.auth_tokens[{i}]: needs at least {} characters",
                wayside_service::auth::MIN_TOKEN_LEN
            );
        }
        let f = &self.faces;
        if !(f.detector.min_score > 0.0 && f.detector.min_score < 1.0) {
            bail!(
                "faces.detector.min_score: must be between 0 and 1, got {}",
                f.detector.min_score
            );
        }
        f.tracker.validate().context("faces.tracker")?;
        if !(0.0..=2.0).contains(&f.picture_margin) {
            bail!(
                "faces.picture_margin: must be 0..=2, got {}",
                f.picture_margin
            );
        }
        let p = &self.plates;
        if !(1..=16).contains(&p.reads_per_frame) {
            bail!(
                "plates.reads_per_frame: must be 1..=16, got {}",
                p.reads_per_frame
            );
        }
        if !(1..=1000).contains(&p.max_attempts) || (p.max_attempts as usize) < p.vote.min_reads {
            bail!(
                "plates.max_attempts: must be 1..=1000 and at least plates.vote.min_reads ({}), got {}",
                p.vote.min_reads,
                p.max_attempts
            );
        }
        if !(0.0..=1.0).contains(&p.picture_margin) {
            bail!(
                "plates.picture_margin: must be 0..=1, got {}",
                p.picture_margin
            );
        }
        p.detector.validate().context("plates.detector")?;
        p.rectify.validate().context("plates.rectify")?;
        p.grammar.validate().context("plates.grammar")?;
        p.region.validate().context("plates.region")?;
        p.vote.validate().context("plates.vote")?;
        let d = &self.data_api;
        if !(d.url.starts_with("http://") || d.url.starts_with("https://")) {
            bail!(
                "data_api.url: must start with http:// or https://, got {:?}",
                d.url
            );
        }
        if !(100..=600_000).contains(&d.timeout_ms) {
            bail!(
                "data_api.timeout_ms: must be 100..=600000, got {}",
                d.timeout_ms
            );
        }
        self.outbox.validate()?;
        self.mqtt.validate()?;
        crate::camera::validate(&self.cameras)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config> {
        let c: Config = toml::from_str(text)?;
        c.validate()?;
        Ok(c)
    }

    #[test]
    fn defaults_are_valid() {
        assert!(parse("").is_ok());
    }

    #[test]
    fn errors_name_the_field() {
        let e = parse("[detector]\nmin_score = 1.5").unwrap_err();
        assert!(format!("{e:#}").contains("detector.min_score"), "{e:#}");
        let e = parse("[models]\nthreads = 0").unwrap_err();
        assert!(format!("{e:#}").contains("models.threads"), "{e:#}");
        let e = parse("[models]\ncpu_features = \"-avx513f\"").unwrap_err();
        assert!(format!("{e:#}").contains("cpu_features"), "{e:#}");
        assert!(format!("{e:#}").contains("avx513f"), "{e:#}");
        let e = parse("[video]\ndetect_workers = 0").unwrap_err();
        assert!(format!("{e:#}").contains("video.detect_workers"), "{e:#}");
        let e = parse("[video]\ndecode_threads = 65").unwrap_err();
        assert!(format!("{e:#}").contains("video.decode_threads"), "{e:#}");
        let e = parse("[classes]\nvehicle = [\"tram\"]").unwrap_err();
        assert!(
            format!("{e:#}").contains("classes: unknown COCO class \"tram\""),
            "{e:#}"
        );
        let e = parse("[plates.vote]\nmin_reads = 0").unwrap_err();
        assert!(format!("{e:#}").contains("plates.vote"), "{e:#}");
        assert!(format!("{e:#}").contains("min_reads"), "{e:#}");
        let e = parse("[detector]\nmin_scor = 0.3").unwrap_err();
        assert!(
            format!("{e:#}").contains("unknown field `min_scor`"),
            "{e:#}"
        );
    }
}
