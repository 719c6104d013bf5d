//! Wayside's pure compute: everything between a decoded RGB frame and the
//! numbers the daemon reports. It knows nothing of HTTP, GStreamer or MQTT and
//! links no system library, so it unit-tests and cross-compiles on its own.
//!
//! The flow a frame takes through it: [`frame`] (a borrowed RGB view) →
//! [`detect`] (letterbox, model, decode, NMS) → [`track`] (ByteTrack) →
//! [`count`] (per-frame and pass-through counts); faces take [`face`]
//! (detect, align, judge, embed, keep the best per track), and plates
//! [`plate`] (detect in a vehicle, rectify, read, check, vote per track).
//! [`runtime`] is the only module that talks to tract. [`fuzzing`] holds the
//! properties the fuzz targets check (`fuzz/`, docs/RELIABILITY.md).

pub mod annotate;
pub mod classes;
pub mod count;
pub mod detect;
pub mod face;
pub mod frame;
pub mod fuzzing;
pub mod geometry;
pub mod plate;
pub mod runtime;
pub mod track;

pub use classes::Kind;
pub use detect::Detection;
pub use frame::RgbFrame;
pub use geometry::BBox;
