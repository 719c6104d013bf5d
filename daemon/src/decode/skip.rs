//! Frames nobody will use, dropped before they are converted or queued.
//!
//! A job analyses few of a video's frames. At a 200 ms interval with 5
//! tracked frames a second, it uses one frame in five of a 25 fps upload.
//! Converting a decoded frame costs about half as much as decoding it
//! (720p H.264 to RGB: 2.5 against 5.8 ms, docs/BENCHMARKS.md; a hardware
//! decoder's NV12 to I420 less), and a queued frame holds its memory. So a
//! probe on the converter's input asks the consumer's rule about each
//! frame, and drops the ones it turns down before they are converted.
//!
//! For a file the rule is the job's own schedule, and it must give the job
//! the same answers as if the job saw every frame. That holds when a frame
//! the rule skips leaves the rule unchanged, as `pipeline::Schedule` does:
//! the probe feeds it every frame, the job sees only the kept ones, and both
//! agree. Frames that pass before the rule is set (the preroll frame, the
//! appsink's queue) are replayed into it then. The probe is the stream's one
//! clock: it times every frame, from the first frame's PTS, and each frame
//! the consumer takes carries the time the rule was given for it
//! ([`Skipper::take`]). A frame without a PTS (a raw MJPEG stream) starts
//! where the frame before it ended.
//!
//! A camera's schedule runs on the box's clock, not on the stream's, so its
//! rule is a copy of the schedule that the camera's thread keeps in step
//! (`camera::gate`), judging each frame by when the thread will get it: at
//! once for a live source, but a file played as a camera is decoded a
//! frame or so ahead of its time and held back by the sink
//! ([`FrameTime::ready_at`]). The frame carries that instant to the camera's
//! thread, which times the frame by it, so the rule and the schedule agree.
//! That rule shares its state with the thread, so the copy of it that
//! judges frames before decoding (below) is given apart, and only asks
//! (`Decoder::skip_unused_with`).
//! A frame of such a file that the rule turns down is held by the probe
//! for as long as the sink would have held it, so that the decoder keeps
//! the stream's pace whatever the rule drops (`mod.rs`, `drop_frame`).
//!
//! A frame no other frame is predicted from (`disposable.rs`) is judged
//! before it is decoded, by a copy of the rule, and one turned down is
//! never decoded ([`Skipper::admit_coded`]). For a job's file, frames reach
//! the decoder in coding order, not in the order they are shown, so the
//! copy is asked about every frame in time order: the frames passed on wait
//! until a later disposable frame comes. Both copies then see the same
//! frames in the same order, so they answer alike, and the frames the job
//! gets are the ones it would get with every frame decoded. A live camera's
//! rule judges a frame by when it will be ready, so the copy is told when
//! its decoding will end: as late as the last few disposable frames took.
//! That is a millisecond for Motion JPEG; a B-frame is held a few frames
//! to be put in order, by which time the camera wants most of them. A file
//! played as a camera's copy is told when the sink will hand the frame
//! over, as its rule is.
//!
//! Every frame the probe sees is counted, so a camera's health reports what
//! its source delivers, and how long ago, whatever the rule keeps.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use gstreamer as gst;

/// A rule is set right after preroll, when a few frames at most have
/// passed. A decoder whose rule never comes stops recording here.
const MAX_BEFORE_RULE: usize = 64;

/// Converted frames whose times are kept until the consumer takes them:
/// more than the appsink holds.
const READY_KEPT: usize = 8;

/// How many decoding times of disposable frames are kept: the longest of
/// them is how long a live frame is expected to take to decode.
const LATENCIES_KEPT: usize = 8;

/// How many frames an H.264 decoder may hold back to put them in order
/// (its largest picture buffer): a frame passed to the decoder is surely
/// judged in its turn once this many wait behind it.
const REORDER_DEPTH: usize = 16;

/// How long a frame lasts when neither it nor its stream's caps say: a raw
/// stream without timestamps or frame rate is timed as ffmpeg times it, at
/// 25 frames a second.
pub(super) const UNKNOWN_FRAME: gst::ClockTime = gst::ClockTime::from_mseconds(40);

/// What the probe knows of the stream, shared with the decoder.
#[derive(Default)]
pub(super) struct Skipper(Mutex<State>);

/// A decoded frame, as a rule sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameTime {
    /// Stream time, from the first frame's PTS.
    pub t_ms: u64,
    /// When the consumer can take the frame: when it was decoded, or when
    /// the sink will hand it over if the sink keeps to the stream's pace.
    pub ready_at: Instant,
}

pub(super) type Rule = Box<dyn FnMut(FrameTime) -> bool + Send>;

/// When a coded frame will be ready for the consumer, as far as the probe
/// in front of the decoder can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ready {
    /// As soon as it is decoded (a live source): as long after now as the
    /// longest of the last few disposable frames took, or a frame's length
    /// until that is known.
    WhenDecoded,
    /// This long from now: at once for a job's file, when the sink hands it
    /// over for a file played as a camera.
    After(Duration),
}

/// Frames the probe has seen so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Frames decoded; with `undecoded`, every frame the source delivered.
    pub decoded: u64,
    /// Those that went on to conversion.
    pub converted: u64,
    /// Frames dropped before they were decoded.
    pub undecoded: u64,
}

#[derive(Default)]
struct State {
    first_pts: Option<gst::ClockTime>,
    /// The frames that passed before the rule was set.
    before_rule: Vec<FrameTime>,
    rule: Option<Rule>,
    /// The rule's copy that judges frames before they are decoded.
    coded_rule: Option<Rule>,
    /// Times and ready instants of the frames passed to the decoder that
    /// `coded_rule` has not judged yet, earliest first.
    unjudged: BinaryHeap<Reverse<(gst::ClockTime, Instant)>>,
    /// The last time `coded_rule` judged.
    judged_up_to: Option<gst::ClockTime>,
    /// Set when the rule never came: every frame passes.
    off: bool,
    /// Raw PTS of the disposable frames on their way through a live
    /// decoder, and when each reached it, oldest first.
    decoding: VecDeque<(gst::ClockTime, Instant)>,
    /// How long the last few of them took to decode.
    latencies: VecDeque<Duration>,
    /// Set when a frame reached the decoder after a later one was judged:
    /// the stream's order cannot be followed, so every frame is decoded.
    coded_off: bool,
    /// Start and end of the last frame decoded, kept or not.
    last_start: gst::ClockTime,
    last_end: gst::ClockTime,
    tally: Tally,
    /// When the source last delivered a frame, decoded or not.
    last_frame_at: Option<Instant>,
    /// Raw PTS, stream time and ready instant of the frames on their way
    /// to the consumer, oldest first.
    ready: VecDeque<(Option<gst::ClockTime>, gst::ClockTime, Instant)>,
}

impl Skipper {
    fn state(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a decoded frame goes on to conversion. The frame lasts
    /// `length`; the sink will hold it back for `held`.
    pub(super) fn admit(
        &self,
        pts: Option<gst::ClockTime>,
        length: gst::ClockTime,
        held: Duration,
    ) -> bool {
        let now = Instant::now();
        let ready_at = now + held;
        let mut s = self.state();
        s.last_frame_at = Some(now);
        s.decoded(pts, now);
        let t = s.time(pts, length);
        let keep = s.keep(t, ready_at);
        s.tally.decoded += 1;
        s.tally.converted += u64::from(keep);
        if keep {
            if s.ready.len() == READY_KEPT {
                s.ready.pop_front();
            }
            s.ready.push_back((pts, t, ready_at));
        }
        keep
    }

    /// Whether a coded frame goes on to the decoder. Only a `disposable`
    /// one with a PTS may be dropped: it is when the rule's copy, asked
    /// first about every frame that comes before it, turns it down, judging
    /// it by when it will be `ready`.
    pub(super) fn admit_coded(
        &self,
        pts: Option<gst::ClockTime>,
        length: gst::ClockTime,
        disposable: bool,
        ready: Ready,
    ) -> bool {
        let now = Instant::now();
        let mut guard = self.state();
        let s = &mut *guard;
        s.last_frame_at = Some(now);
        let Some(pts) = pts else {
            return true;
        };
        let ready_at = now
            + match ready {
                Ready::WhenDecoded => {
                    let latency = s.latencies.iter().max().copied();
                    latency.unwrap_or(Duration::from_nanos(length.nseconds()))
                }
                Ready::After(held) => held,
            };
        let raw_pts = pts;
        let t = pts.saturating_sub(*s.first_pts.get_or_insert(pts));
        if s.off || s.coded_off {
            return true;
        }
        if s.judged_up_to.is_some_and(|last| t < last) {
            s.coded_off = true;
            return true;
        }
        let Some(rule) = s.coded_rule.as_mut() else {
            s.unjudged.push(Reverse((t, ready_at)));
            if s.unjudged.len() > MAX_BEFORE_RULE {
                s.coded_off = true;
            }
            return true;
        };
        let mut judge = |(t, ready_at): (gst::ClockTime, Instant)| {
            rule(FrameTime {
                t_ms: t.mseconds(),
                ready_at,
            })
        };
        if !disposable {
            s.unjudged.push(Reverse((t, ready_at)));
            if s.unjudged.len() > REORDER_DEPTH
                && let Some(Reverse(earliest)) = s.unjudged.pop()
            {
                judge(earliest);
                s.judged_up_to = Some(earliest.0);
            }
            return true;
        }
        // Encoders code a disposable frame right before it is shown, after
        // every frame shown earlier: those are judged first, in turn.
        while let Some(&Reverse(earlier)) = s.unjudged.peek()
            && earlier.0 < t
        {
            s.unjudged.pop();
            judge(earlier);
            s.judged_up_to = Some(earlier.0);
        }
        s.judged_up_to = Some(t);
        if judge((t, ready_at)) {
            // No frame waits for it, so the decoder hands it on as soon as
            // it is decoded: how long that takes is measured on it.
            if s.decoding.len() == READY_KEPT {
                s.decoding.pop_front();
            }
            s.decoding.push_back((raw_pts, now));
            return true;
        }
        s.tally.undecoded += 1;
        s.last_start = s.last_start.max(t);
        s.last_end = s.last_end.max(t + length);
        false
    }

    /// The stream time and ready instant the rule was given for the
    /// converted frame at raw `pts`; the frames before it are gone (the
    /// appsink dropped them). Frames without a PTS are taken in order.
    pub(super) fn take(&self, pts: Option<gst::ClockTime>) -> Option<(gst::ClockTime, Instant)> {
        let mut s = self.state();
        while let Some((p, t, at)) = s.ready.pop_front() {
            if p == pts {
                return Some((t, at));
            }
        }
        None
    }

    /// From now on frames for which `rule` answers false are dropped.
    /// `coded_rule`, a copy of it, judges coded frames from now on.
    pub(super) fn set_rule(&self, mut rule: Rule, coded_rule: Rule) {
        let mut s = self.state();
        for frame in std::mem::take(&mut s.before_rule) {
            rule(frame);
        }
        s.rule = Some(rule);
        s.coded_rule = Some(coded_rule);
    }

    /// Start of the last frame decoded, relative to the first.
    pub(super) fn last_start(&self) -> gst::ClockTime {
        self.state().last_start
    }

    /// End of the last frame decoded, relative to the first.
    pub(super) fn last_end(&self) -> gst::ClockTime {
        self.state().last_end
    }

    pub(super) fn tally(&self) -> Tally {
        self.state().tally
    }

    /// When the source last delivered a frame, decoded or not.
    pub(super) fn last_frame_at(&self) -> Option<Instant> {
        self.state().last_frame_at
    }
}

impl State {
    /// A frame at raw `pts` came out of the decoder `now`: if it was a
    /// disposable one, how long it took is kept.
    fn decoded(&mut self, pts: Option<gst::ClockTime>, now: Instant) {
        let Some(pts) = pts else {
            return;
        };
        let Some(i) = self.decoding.iter().position(|&(p, _)| p == pts) else {
            return;
        };
        let (_, sent) = self.decoding[i];
        self.decoding.drain(..=i);
        if self.latencies.len() == LATENCIES_KEPT {
            self.latencies.pop_front();
        }
        self.latencies
            .push_back(now.saturating_duration_since(sent));
    }

    /// Stream time of a frame: from the first frame's PTS, or right after
    /// the frame before when it has none.
    fn time(&mut self, pts: Option<gst::ClockTime>, length: gst::ClockTime) -> gst::ClockTime {
        let t = match pts {
            Some(pts) => pts.saturating_sub(*self.first_pts.get_or_insert(pts)),
            None => self.last_end,
        };
        // Later than any frame dropped before decoding, which may be
        // shown after frames still in the decoder.
        self.last_start = self.last_start.max(t);
        self.last_end = self.last_end.max(t + length);
        t
    }

    /// The rule's answer for a frame at `t`, or yes while there is none.
    fn keep(&mut self, t: gst::ClockTime, ready_at: Instant) -> bool {
        if self.off {
            return true;
        }
        let frame = FrameTime {
            t_ms: t.mseconds(),
            ready_at,
        };
        if let Some(rule) = self.rule.as_mut() {
            return rule(frame);
        }
        if self.before_rule.len() < MAX_BEFORE_RULE {
            self.before_rule.push(frame);
        } else {
            self.off = true;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Option<gst::ClockTime> {
        Some(gst::ClockTime::from_mseconds(v))
    }

    const FRAME: gst::ClockTime = gst::ClockTime::from_mseconds(40);

    #[test]
    fn frames_before_the_rule_pass_and_are_replayed_into_it() {
        let skipper = Skipper::default();
        assert!(skipper.admit(ms(5_000), FRAME, Duration::ZERO));
        assert!(skipper.admit(ms(5_040), FRAME, Duration::ZERO));
        let seen = std::sync::Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        skipper.set_rule(
            Box::new(move |f| {
                log.lock().unwrap().push(f.t_ms);
                f.t_ms % 80 == 0
            }),
            Box::new(|_| true),
        );
        assert!(skipper.admit(ms(5_080), FRAME, Duration::ZERO));
        assert!(!skipper.admit(ms(5_120), FRAME, Duration::ZERO));
        assert_eq!(*seen.lock().unwrap(), [0, 40, 80, 120]);
        assert_eq!(skipper.last_start().mseconds(), 120);
        assert_eq!(skipper.last_end().mseconds(), 160);
        assert_eq!(
            skipper.tally(),
            Tally {
                decoded: 4,
                converted: 3,
                undecoded: 0
            }
        );
    }

    #[test]
    fn frames_without_a_time_follow_the_frame_before_and_are_judged_as_any() {
        let skipper = Skipper::default();
        let seen = std::sync::Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        skipper.set_rule(
            Box::new(move |f| {
                log.lock().unwrap().push(f.t_ms);
                f.t_ms % 100 == 0
            }),
            Box::new(|_| true),
        );
        let kept: Vec<bool> = [ms(1_000), None, None, None, None, ms(1_300)]
            .into_iter()
            .map(|pts| skipper.admit(pts, gst::ClockTime::from_mseconds(50), Duration::ZERO))
            .collect();
        assert_eq!(*seen.lock().unwrap(), [0, 50, 100, 150, 200, 300]);
        assert_eq!(kept, [true, false, true, false, true, true]);
        // The consumer gets each kept frame's time, in order.
        let taken: Vec<u64> = [ms(1_000), None, None, ms(1_300)]
            .into_iter()
            .map(|pts| skipper.take(pts).unwrap().0.mseconds())
            .collect();
        assert_eq!(taken, [0, 100, 200, 300]);
        assert_eq!(skipper.take(None), None, "nothing left");
    }

    #[test]
    fn a_coded_frame_is_judged_by_when_it_will_be_ready() {
        let skipper = Skipper::default();
        let leads = std::sync::Arc::new(Mutex::new(Vec::new()));
        let log = leads.clone();
        let rule = move |f: FrameTime| {
            log.lock()
                .unwrap()
                .push(f.ready_at.saturating_duration_since(Instant::now()));
            true
        };
        skipper.set_rule(Box::new(|_| true), Box::new(rule));
        // Until one is measured, a frame's length.
        assert!(skipper.admit_coded(ms(0), FRAME, true, Ready::WhenDecoded));
        std::thread::sleep(Duration::from_millis(5));
        assert!(skipper.admit(ms(0), FRAME, Duration::ZERO));
        // Then the longest of the last few; a file's frame is judged when
        // it is said to be ready.
        assert!(skipper.admit_coded(ms(40), FRAME, true, Ready::WhenDecoded));
        assert!(skipper.admit_coded(ms(80), FRAME, true, Ready::After(Duration::ZERO)));
        let held = Duration::from_millis(60);
        assert!(skipper.admit_coded(ms(120), FRAME, true, Ready::After(held)));
        let leads = leads.lock().unwrap();
        assert!(leads[0] > Duration::from_millis(35), "{leads:?}");
        assert!(
            (Duration::from_millis(2)..Duration::from_millis(30)).contains(&leads[1]),
            "{leads:?}"
        );
        assert!(leads[2] < Duration::from_millis(2), "{leads:?}");
        assert!(
            (held - Duration::from_millis(2)..=held).contains(&leads[3]),
            "{leads:?}"
        );
    }

    #[test]
    fn a_rule_that_never_comes_stops_the_recording() {
        let skipper = Skipper::default();
        for i in 0..(MAX_BEFORE_RULE as u64 + 10) {
            assert!(skipper.admit(ms(i * 40), FRAME, Duration::ZERO));
        }
        skipper.set_rule(Box::new(|_| false), Box::new(|_| false));
        assert!(
            skipper.admit(ms(10_000), FRAME, Duration::ZERO),
            "skipping is off"
        );
        assert!(skipper.state().before_rule.is_empty());
    }
}
