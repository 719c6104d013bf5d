//! The constant-velocity Kalman filter every track carries.
//!
//! State is ByteTrack's/SORT's eight numbers `(cx, cy, a, h, vcx, vcy, va, vh)`:
//! box centre, aspect ratio `w / h`, height and their velocities. The noise
//! model is ByteTrack's (standard deviations proportional to the box height,
//! so a near, large object is allowed to move more pixels than a far one).
//!
//! Unlike ByteTrack, time is not "one frame": velocities are per second and
//! every prediction takes the real gap `dt` between frames, because Wayside's
//! frames are unevenly spaced (the sampler skips, a live camera stalls).
//! ByteTrack's per-frame noise was tuned at 30 fps, so its per-frame values
//! are treated as rates at [`REFERENCE_DT_S`] and scaled linearly with `dt`
//! (process noise of a random walk grows with elapsed time).

use nalgebra::{SMatrix, SVector};

use crate::BBox;

pub type State = SVector<f64, 8>;
pub type Covariance = SMatrix<f64, 8, 8>;
/// A measurement `(cx, cy, a, h)`.
pub type Measurement = SVector<f64, 4>;

/// The frame interval ByteTrack's noise weights were tuned for (MOT17, 30 fps).
pub const REFERENCE_DT_S: f64 = 1.0 / 30.0;
/// ByteTrack's `_std_weight_position`.
const STD_POSITION: f64 = 1.0 / 20.0;
/// ByteTrack's `_std_weight_velocity` (per frame; divided by the reference
/// interval below to become per second).
const STD_VELOCITY: f64 = 1.0 / 160.0;
/// Smallest height and aspect a predicted box is given, so a shrinking
/// prediction never produces an empty or inverted box.
const MIN_HEIGHT: f64 = 1.0;
const MIN_ASPECT: f64 = 0.01;

/// One track's filter: mean and covariance of the state.
#[derive(Debug, Clone)]
pub struct KalmanBox {
    mean: State,
    covariance: Covariance,
}

impl KalmanBox {
    /// Starts a filter at `bbox` with zero velocity and ByteTrack's wide
    /// initial uncertainty on the velocities.
    pub fn new(bbox: &BBox) -> Self {
        let z = measurement(bbox);
        let mut mean = State::zeros();
        mean.fixed_rows_mut::<4>(0).copy_from(&z);
        let h = z[3];
        let vel = STD_VELOCITY / REFERENCE_DT_S;
        let std = [
            2.0 * STD_POSITION * h,
            2.0 * STD_POSITION * h,
            1e-2,
            2.0 * STD_POSITION * h,
            10.0 * vel * h,
            10.0 * vel * h,
            1e-5 / REFERENCE_DT_S,
            10.0 * vel * h,
        ];
        let covariance =
            Covariance::from_diagonal(&State::from_iterator(std.iter().map(|s| s * s)));
        Self { mean, covariance }
    }

    /// Moves the state `dt_s` seconds ahead. A zero or negative gap (a
    /// repeated timestamp) leaves the filter unchanged.
    pub fn predict(&mut self, dt_s: f64) {
        if dt_s <= 0.0 || !dt_s.is_finite() {
            return;
        }
        let mut f = Covariance::identity();
        for i in 0..4 {
            f[(i, i + 4)] = dt_s;
        }
        let h = self.mean[3].max(MIN_HEIGHT);
        let vel = STD_VELOCITY / REFERENCE_DT_S;
        let std = [
            STD_POSITION * h,
            STD_POSITION * h,
            1e-2,
            STD_POSITION * h,
            vel * h,
            vel * h,
            1e-5 / REFERENCE_DT_S,
            vel * h,
        ];
        let scale = dt_s / REFERENCE_DT_S;
        let q = Covariance::from_diagonal(&State::from_iterator(std.iter().map(|s| s * s * scale)));
        self.mean = f * self.mean;
        self.covariance = f * self.covariance * f.transpose() + q;
    }

    /// Folds in a measured box. If the innovation covariance is not positive
    /// definite (only with corrupted state) the measurement is skipped rather
    /// than poisoning the filter with NaNs.
    pub fn update(&mut self, bbox: &BBox) {
        let z = measurement(bbox);
        let h = self.mean[3].max(MIN_HEIGHT);
        let r_std = [STD_POSITION * h, STD_POSITION * h, 1e-1, STD_POSITION * h];
        let r = SMatrix::<f64, 4, 4>::from_diagonal(&Measurement::from_iterator(
            r_std.iter().map(|s| s * s),
        ));
        let p = self.covariance;
        let s = p.fixed_view::<4, 4>(0, 0) + r;
        let Some(chol) = s.cholesky() else {
            return;
        };
        // K = P Hᵀ S⁻¹, computed as (S⁻¹ H P)ᵀ since S and P are symmetric.
        let ph_t: SMatrix<f64, 8, 4> = p.fixed_view::<8, 4>(0, 0).into_owned();
        let gain = chol.solve(&ph_t.transpose()).transpose();
        let innovation = z - self.mean.fixed_rows::<4>(0);
        self.mean += gain * innovation;
        let cov = p - gain * s * gain.transpose();
        // Keep the covariance exactly symmetric against rounding drift.
        self.covariance = (cov + cov.transpose()) * 0.5;
    }

    /// Stops the height from growing or shrinking while nobody is looking:
    /// ByteTrack does this for tracks that are not being matched.
    pub fn freeze_height(&mut self) {
        self.mean[7] = 0.0;
    }

    /// The filtered box.
    pub fn bbox(&self) -> BBox {
        let h = self.mean[3].max(MIN_HEIGHT);
        let w = self.mean[2].max(MIN_ASPECT) * h;
        BBox::from_cxcywh(self.mean[0] as f32, self.mean[1] as f32, w as f32, h as f32)
    }

    /// Velocity of the centre in pixels per second.
    pub fn velocity(&self) -> (f32, f32) {
        (self.mean[4] as f32, self.mean[5] as f32)
    }
}

fn measurement(bbox: &BBox) -> Measurement {
    let (cx, cy) = bbox.center();
    let h = f64::from(bbox.height()).max(MIN_HEIGHT);
    let a = f64::from(bbox.width()) / h;
    Measurement::new(f64::from(cx), f64::from(cy), a, h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_velocity_in_pixels_per_second() {
        // 10 frames at 100 ms moving +20 px per frame = 200 px/s.
        let mut kf = KalmanBox::new(&BBox::from_cxcywh(100.0, 100.0, 40.0, 80.0));
        for i in 1..=10 {
            kf.predict(0.1);
            kf.update(&BBox::from_cxcywh(
                100.0 + 20.0 * i as f32,
                100.0,
                40.0,
                80.0,
            ));
        }
        let (vx, vy) = kf.velocity();
        assert!((vx - 200.0).abs() < 20.0, "vx = {vx}");
        assert!(vy.abs() < 5.0, "vy = {vy}");
        // A 300 ms gap moves the prediction by about 60 px, not 20.
        let before = kf.bbox().center().0;
        kf.predict(0.3);
        let moved = kf.bbox().center().0 - before;
        assert!((moved - 60.0).abs() < 8.0, "moved {moved}");
    }

    #[test]
    fn zero_dt_is_a_no_op() {
        let mut kf = KalmanBox::new(&BBox::new(0.0, 0.0, 10.0, 20.0));
        let before = kf.bbox();
        kf.predict(0.0);
        kf.predict(-1.0);
        assert_eq!(kf.bbox(), before);
    }

    #[test]
    fn update_pulls_towards_measurement_and_keeps_box_shape() {
        let mut kf = KalmanBox::new(&BBox::new(0.0, 0.0, 10.0, 20.0));
        kf.predict(0.1);
        kf.update(&BBox::new(2.0, 0.0, 12.0, 20.0));
        let b = kf.bbox();
        assert!(b.x1 > 0.5 && b.x1 <= 2.0, "{b:?}");
        assert!((b.width() - 10.0).abs() < 0.5 && (b.height() - 20.0).abs() < 0.5);
    }
}
