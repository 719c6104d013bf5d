//! Which of a camera's frames go on to conversion, decided as they leave
//! the decoder, before the camera's thread takes them.
//!
//! The camera's thread owns the schedule, but it learns of a frame only
//! when it takes it, which on a loaded box can be frames after the decoder
//! let it through. Had the probe only compared each frame with the due time
//! the thread last set, every frame in that gap would pass as well, be
//! converted, and be thrown away unanalysed. So the gate keeps a copy of
//! the schedule and moves it on itself when it lets a frame through: the
//! frames after it wait their turn at once. The thread hands the gate its
//! own schedule whenever it takes a frame, which agrees with the copy (both
//! see the frame at the same instant, `FrameTime::ready_at`), and corrects
//! it if a frame let through never arrived (the stream broke, the sink
//! dropped it for a newer one).
//!
//! While the thread analyses, frames that would be ready before it is done
//! are turned down too (`busy_until`): analysis slower than the schedule
//! would otherwise convert every frame that comes due meanwhile, and the
//! sink would keep only the newest.

use crate::pipeline::schedule::Schedule;

#[derive(Debug, Clone)]
pub(super) struct Gate {
    schedule: Schedule,
    /// Time of the newest frame the schedule above has tracked.
    tracked_ms: Option<u64>,
    /// No frame ready before this is converted: analysis is running.
    busy_until_ms: u64,
}

impl Gate {
    pub fn new(schedule: Schedule) -> Self {
        Self {
            schedule,
            tracked_ms: None,
            busy_until_ms: 0,
        }
    }

    /// Whether a frame ready at `t_ms` would be let through now. Asked
    /// before a frame is decoded, so it changes nothing: the frame is
    /// judged again once decoded.
    pub fn due(&self, t_ms: u64) -> bool {
        t_ms >= self.schedule.next_due_ms().max(self.busy_until_ms)
    }

    /// Lets the decoded frame ready at `t_ms` through if it is due, and
    /// then counts it as tracked.
    pub fn admit(&mut self, t_ms: u64) -> bool {
        if !self.due(t_ms) {
            return false;
        }
        self.schedule.slot(t_ms);
        self.tracked_ms = Some(t_ms);
        true
    }

    /// The camera's thread took the frame at `t_ms` and gave it to
    /// `schedule`. Unless the gate has since let a later frame through, the
    /// thread's schedule is the one that counts.
    pub fn took(&mut self, t_ms: u64, schedule: &Schedule) {
        if self.tracked_ms.is_none_or(|newest| t_ms >= newest) {
            self.schedule = schedule.clone();
            self.tracked_ms = Some(t_ms);
        }
    }

    /// Analysis runs until `t_ms`; 0 once it is done.
    pub fn busy_until(&mut self, t_ms: u64) {
        self.busy_until_ms = t_ms;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 200 ms interval tracked 5 times a second, on a 25 fps camera.
    fn gate() -> (Gate, Schedule) {
        let schedule = Schedule::new(200, 5.0, None);
        (Gate::new(schedule.clone()), schedule)
    }

    /// The same, once the thread has taken the frame at 0.
    fn after_the_first() -> (Gate, Schedule) {
        let (mut gate, mut thread) = gate();
        assert!(gate.admit(0));
        assert!(thread.slot(0).track);
        gate.took(0, &thread);
        (gate, thread)
    }

    #[test]
    fn frames_after_one_let_through_wait_for_their_turn_before_the_thread_takes_it() {
        let (mut gate, mut thread) = gate();
        // The thread is slow to take the frame at 0: the next four frames
        // reach the gate first.
        let passed: Vec<u64> = (0..5).map(|i| i * 40).filter(|&t| gate.admit(t)).collect();
        assert_eq!(passed, [0]);
        assert!(thread.slot(0).track);
        gate.took(0, &thread);
        assert!(gate.admit(200), "due again one period on");
        assert!(thread.slot(200).track, "the thread agrees");
        gate.took(200, &thread);
        assert!(!gate.admit(240));
    }

    #[test]
    fn a_coded_frame_is_only_asked_about() {
        let (mut gate, _) = gate();
        assert!(gate.due(0));
        assert!(gate.due(0), "asking changed nothing");
        assert!(gate.admit(0));
        assert!(!gate.due(40));
    }

    #[test]
    fn a_frame_that_never_reached_the_thread_delays_the_next_by_a_period_at_most() {
        let (mut gate, mut thread) = after_the_first();
        // The frame at 200 is let through and lost; the thread, late, says
        // it took the one at 0 again: the gate keeps its newer copy.
        assert!(gate.admit(200));
        gate.took(0, &thread);
        assert!(!gate.admit(240));
        assert!(gate.admit(400));
        // The thread's schedule never saw 200 or 400; it tracks the frame
        // at 400 and from then on the two agree.
        assert!(thread.slot(400).track);
        gate.took(400, &thread);
        assert!(!gate.due(560) && gate.due(600));
    }

    #[test]
    fn nothing_passes_while_analysis_runs() {
        let (mut gate, _) = after_the_first();
        gate.busy_until(700);
        assert!(!gate.admit(200) && !gate.admit(680));
        gate.busy_until(0);
        assert!(gate.admit(720));
    }
}
