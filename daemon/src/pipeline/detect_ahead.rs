//! Detection running ahead of tracking on worker threads. Tracking and
//! counting need a video's frames in order; detection does not, and it is
//! nearly all of a job's time (docs/BENCHMARKS.md). So each worker owns a
//! detector session and detects whichever frame comes next, while the job's
//! thread decodes, tracks, draws and encodes; results are handed back in the
//! order the frames went in. On N cores a job runs up to N detections at once,
//! which one inference (tract uses one core per run) cannot.

use std::collections::VecDeque;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::Scope;

use wayside_vision::detect::{Detection, Detector};

use super::PipelineError;
use crate::decode::DecodedFrame;

type Reply<P> = Result<(DecodedFrame, P, Vec<Detection>), PipelineError>;

/// A frame to detect, with what its job needs back with it.
struct Work<P> {
    frame: DecodedFrame,
    payload: P,
    reply: SyncSender<Reply<P>>,
}

/// Frames in flight between a job's thread and its detection workers.
/// Dropping it stops the workers once their current frame is done.
pub struct DetectAhead<P> {
    work: SyncSender<Work<P>>,
    /// One reply per frame sent, oldest first: waiting on the front keeps
    /// the order whichever worker finishes first.
    in_flight: VecDeque<Receiver<Reply<P>>>,
    depth: usize,
}

impl<P: Send> DetectAhead<P> {
    /// `workers` threads in `scope`, each with its own session of `detector`.
    pub fn start<'scope, 'env>(
        scope: &'scope Scope<'scope, 'env>,
        detector: &'env Detector,
        workers: usize,
    ) -> Result<Self, PipelineError>
    where
        P: 'scope,
    {
        let workers = workers.max(1);
        let (work, queue) = sync_channel::<Work<P>>(workers);
        let queue = Arc::new(Mutex::new(queue));
        for _ in 0..workers {
            let mut session = detector.session();
            let queue = Arc::clone(&queue);
            scope.spawn(move || {
                loop {
                    // The lock is held only while taking the next frame.
                    let next = queue
                        .lock()
                        .map_err(|_| ())
                        .and_then(|q| q.recv().map_err(|_| ()));
                    let Ok(Work {
                        frame,
                        payload,
                        reply,
                    }) = next
                    else {
                        return;
                    };
                    let found = session.detect(frame.yuv());
                    // A job that stopped early no longer waits for this one.
                    let _ = reply.send(
                        found
                            .map(|d| (frame, payload, d))
                            .map_err(PipelineError::from),
                    );
                }
            });
        }
        Ok(Self {
            work,
            in_flight: VecDeque::new(),
            // One more than the workers, so each has the next frame queued
            // while the oldest is handed back.
            depth: workers + 1,
        })
    }

    /// Queues `frame`; once `depth` frames are in flight, waits for the
    /// oldest and returns it with its detections.
    pub fn push(&mut self, frame: DecodedFrame, payload: P) -> Option<Reply<P>> {
        let (reply, answer) = sync_channel(1);
        if self
            .work
            .send(Work {
                frame,
                payload,
                reply,
            })
            .is_err()
        {
            return Some(Err(PipelineError::DetectWorker));
        }
        self.in_flight.push_back(answer);
        (self.in_flight.len() >= self.depth)
            .then(|| self.pop())
            .flatten()
    }

    /// The oldest frame still in flight, once detected; `None` when none is.
    pub fn pop(&mut self) -> Option<Reply<P>> {
        let answer = self.in_flight.pop_front()?;
        Some(answer.recv().unwrap_or(Err(PipelineError::DetectWorker)))
    }
}
