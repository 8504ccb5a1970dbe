//! A program run held in flight: the peers' `hold` program, run once by
//! BPF_PROG_TEST_RUN on a thread of its own (tens to hundreds of
//! milliseconds in one run), for the tests of what must wait until every
//! program run under way has ended.

use std::{
    thread::JoinHandle,
    time::{Duration, Instant},
};

use anycast::PEERS_OBJECT;
use anycast_common::peer_names::{HOLD, HOLD_FINISHED, HOLD_MARKS, HOLD_STARTED};
use anyhow::{Context as _, Result, bail};
use aya::{
    Ebpf,
    maps::{Array, MapData},
    programs::{TestRun as _, TestRunOptions, Xdp},
};

/// How long [`HeldRun::start`] waits for the run to begin.
const START_WAIT: Duration = Duration::from_secs(5);

/// One run of `hold`, under way on its own thread.
pub struct HeldRun {
    /// `HOLD_MARKS`: runs started and finished.
    marks: Array<MapData, u64>,
    /// The thread, which answers how long the run took.
    thread: Option<JoinHandle<Result<Duration>>>,
}

impl HeldRun {
    /// Loads `hold` and starts one run of it; returns once the run has
    /// begun (it counted its start).
    pub fn start() -> Result<Self> {
        let mut ebpf = Ebpf::load(PEERS_OBJECT).context("loading the peer programs")?;
        let marks = ebpf
            .take_map(HOLD_MARKS)
            .context("the peers object has no HOLD_MARKS")?;
        let marks: Array<MapData, u64> = Array::try_from(marks)?;
        let prog: &mut Xdp = ebpf
            .program_mut(HOLD)
            .context("the peers object has no hold program")?
            .try_into()?;
        prog.load()?;
        let thread = std::thread::spawn(move || -> Result<Duration> {
            let prog: &Xdp = ebpf.program(HOLD).context("the hold program")?.try_into()?;
            let frame = [0u8; 64];
            let t = Instant::now();
            prog.test_run(TestRunOptions {
                data_in: Some(&frame),
                ..TestRunOptions::default()
            })?;
            Ok(t.elapsed())
        });
        let run = HeldRun {
            marks,
            thread: Some(thread),
        };
        // Spins (bounded): the run keeps its CPU busy, this thread takes
        // the other (on one CPU the run would end before this saw it start,
        // and the tests say so).
        let deadline = Instant::now() + START_WAIT;
        while run.marks.get(&HOLD_STARTED, 0)? == 0 {
            if run.thread.as_ref().is_some_and(|t| t.is_finished()) {
                // It failed before it started: its error.
                run.join()?;
                bail!("the hold program ended without counting its start");
            }
            if Instant::now() > deadline {
                bail!("the hold program did not start within {START_WAIT:?}");
            }
            std::thread::yield_now();
        }
        Ok(run)
    }

    /// Whether the run has ended.
    pub fn finished(&self) -> Result<bool> {
        Ok(self.marks.get(&HOLD_FINISHED, 0)? != 0)
    }

    /// Waits for the run's thread; how long the run took.
    pub fn join(mut self) -> Result<Duration> {
        let thread = self.thread.take().context("joined twice")?;
        thread
            .join()
            .map_err(|_| anyhow::anyhow!("the hold thread panicked"))?
    }
}

impl Drop for HeldRun {
    fn drop(&mut self) {
        // A run cannot be stopped: wait for it, so that no test outlives it.
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
