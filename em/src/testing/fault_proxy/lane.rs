//! `Lane`: one direction of one proxied connection, on the callback path:
//! the chunks its source reads go through the direction's toxics, in the
//! order they were added, each a [`Stage`] with a queue, and leave on the
//! target in the order they came. With no toxic the lane is spliced
//! (`proxy_incoming_to`) and none of this runs.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;
use em_core::Conn;
use tokio::time::Instant;

use super::toxic::{Kind, ToxicId};

/// Reading from a lane's source holds while more than this waits in its
/// toxics (a bandwidth toxic under a fast sender, a black hole), and while
/// its target is above its high watermark.
pub(crate) const HOLD_AT: usize = 1 << 20;

/// What moves through a lane: bytes, then the end of the source's stream.
enum Item {
    Data(Bytes),
    End,
}

impl Item {
    fn len(&self) -> usize {
        match self {
            Item::Data(b) => b.len(),
            Item::End => 0,
        }
    }
}

/// What a toxic does to the whole connection when its time comes.
enum Action {
    /// `limit_data` reached: nothing more is read from the source.
    CloseSource,
    /// `timeout`: both sides close now, held bytes dropped.
    CloseBoth,
    /// `reset_peer`: the target gets an RST, the source is closed.
    Reset,
}

/// One toxic on one lane: the items it holds, each with the time it lets
/// it go (`None`: held until the toxic is removed).
struct Stage {
    id: ToxicId,
    kind: Kind,
    queue: VecDeque<(Option<Instant>, Item)>,
    /// The release time of the last item queued: no item leaves before it.
    last: Instant,
    /// When the toxic reached this connection.
    since: Instant,
    /// Bytes let through (`limit_data`).
    passed: u64,
    /// Its deadline's action ran (`timeout`, `reset_peer`).
    fired: bool,
}

impl Stage {
    fn new(id: ToxicId, kind: Kind, now: Instant) -> Stage {
        Stage {
            id,
            kind,
            queue: VecDeque::new(),
            last: now,
            since: now,
            passed: 0,
            fired: false,
        }
    }

    /// When its action is due, if it has one still to run.
    fn deadline(&self) -> Option<Instant> {
        if self.fired {
            return None;
        }
        match self.kind {
            Kind::Timeout { after } if !after.is_zero() => Some(self.since + after),
            Kind::ResetPeer { after } => Some(self.since + after),
            _ => None,
        }
    }

    fn action(&self) -> Option<Action> {
        match self.kind {
            Kind::Timeout { .. } => Some(Action::CloseBoth),
            Kind::ResetPeer { .. } => Some(Action::Reset),
            _ => None,
        }
    }

    /// Takes `item`, arrived at `at`: queues it (or its slices) with the
    /// time it may leave. Returns an action to run now, if it calls for
    /// one, and the bytes it dropped.
    fn enqueue(&mut self, at: Instant, item: Item, rng: &mut Rng) -> (Option<Action>, usize) {
        let mut action = None;
        let mut dropped = 0;
        match (self.kind.clone(), item) {
            (Kind::Latency { delay, jitter }, item) => {
                let mut wait = delay;
                if !jitter.is_zero() && matches!(item, Item::Data(_)) {
                    let span = jitter.as_nanos() as u64;
                    let drawn = rng.below(2 * span + 1);
                    wait = (delay + Duration::from_nanos(drawn)).saturating_sub(jitter);
                }
                self.push(self.last.max(at + wait), item);
            }
            (Kind::Bandwidth { bytes_per_s }, Item::Data(mut data)) => {
                let slice = usize::try_from(bytes_per_s / 10)
                    .unwrap_or(usize::MAX)
                    .max(1);
                while !data.is_empty() {
                    let piece = data.split_to(slice.min(data.len()));
                    let cost = Duration::from_nanos(
                        (piece.len() as u128 * 1_000_000_000 / bytes_per_s as u128) as u64,
                    );
                    self.push(self.last.max(at) + cost, Item::Data(piece));
                }
            }
            (
                Kind::Slicer {
                    average,
                    variation,
                    delay,
                },
                Item::Data(mut data),
            ) => {
                let mut release = self.last.max(at);
                let mut first = true;
                while !data.is_empty() {
                    let size = average - variation + rng.below(2 * variation as u64 + 1) as usize;
                    let piece = data.split_to(size.max(1).min(data.len()));
                    if !first {
                        release += delay;
                    }
                    first = false;
                    self.push(release, Item::Data(piece));
                }
                // The next chunk's first slice waits `delay` too.
                self.last = release + delay;
            }
            (Kind::SlowClose { delay }, Item::End) => {
                self.push(self.last.max(at) + delay, Item::End)
            }
            (Kind::Timeout { .. }, item) => self.queue.push_back((None, item)),
            (Kind::LimitData { bytes }, Item::Data(mut data)) => {
                let left = bytes.saturating_sub(self.passed);
                if left == 0 {
                    dropped = data.len();
                } else {
                    if (data.len() as u64) >= left {
                        dropped = data.len() - left as usize;
                        data.truncate(left as usize);
                        action = Some(Action::CloseSource);
                    }
                    self.passed += data.len() as u64;
                    self.push(self.last.max(at), Item::Data(data));
                    if action.is_some() {
                        self.push(self.last, Item::End);
                    }
                }
            }
            (Kind::LimitData { bytes }, Item::End) if self.passed >= bytes => {
                // Its own end went already.
            }
            (_, item) => self.push(self.last.max(at), item),
        }
        (action, dropped)
    }

    fn push(&mut self, release: Instant, item: Item) {
        self.last = release;
        self.queue.push_back((Some(release), item));
    }
}

/// One direction of one proxied connection.
pub(crate) struct Lane {
    stages: Vec<Stage>,
    /// The source is proxied to the target by em (splice), or nothing
    /// has set it up yet.
    spliced: bool,
    /// Reading from the source is paused by the lane.
    held: bool,
    /// The source's end went into the lane.
    input_ended: bool,
    /// The target is gone, or closed by the lane: nothing more goes out.
    output_ended: bool,
    /// Bytes waiting in the stages.
    buffered: usize,
    /// The timer armed for the next release or deadline.
    timer: Option<(Instant, em_timers::Timer)>,
    rng: Rng,
}

/// What a lane needs of its connection to move bytes: its two ends.
pub(crate) struct Ends<'a> {
    pub(crate) source: &'a Conn,
    pub(crate) target: &'a Conn,
}

impl Lane {
    pub(crate) fn new(seed: u64) -> Lane {
        Lane {
            stages: Vec::new(),
            spliced: false,
            held: false,
            input_ended: false,
            output_ended: false,
            buffered: 0,
            timer: None,
            rng: Rng(seed | 1),
        }
    }

    /// Bytes waiting in its toxics.
    pub(crate) fn buffered(&self) -> usize {
        self.buffered
    }

    /// Whether the lane has a toxic (bytes take the callback path).
    pub(crate) fn is_toxic(&self) -> bool {
        !self.stages.is_empty()
    }

    /// Hands the source to em's proxy (splice) when the lane has no toxic.
    pub(crate) fn splice(&mut self, ends: &Ends<'_>) {
        if self.spliced || self.is_toxic() || self.input_ended || self.output_ended {
            return;
        }
        if self.held {
            self.held = false;
            ends.source.resume();
        }
        match ends.source.proxy_incoming_to(ends.target, HOLD_AT) {
            Ok(()) => self.spliced = true,
            Err(e) => {
                tracing::debug!(source = %ends.source.id(), error = %e, "fault proxy: cannot splice")
            }
        }
    }

    /// Adds a toxic at the end of the lane's pipeline; a spliced lane
    /// takes the callback path from now on (bytes em's proxy already
    /// read still leave first, in order).
    pub(crate) fn add(&mut self, id: ToxicId, kind: Kind, ends: &Ends<'_>) -> Option<Instant> {
        if self.spliced {
            ends.source.stop_proxying();
            self.spliced = false;
        }
        let now = Instant::now();
        let mut stage = Stage::new(id, kind, now);
        if let Kind::LimitData { bytes: 0 } = stage.kind {
            // Nothing may pass: the end goes at once.
            stage.push(now, Item::End);
            self.stages.push(stage);
            self.run(Action::CloseSource, ends);
        } else {
            self.stages.push(stage);
        }
        self.pump(ends)
    }

    /// Removes toxic `id`: what it held moves on at once, in order, to the
    /// next toxic or the target; with no toxic left, the lane is spliced
    /// again. Whether the lane had it.
    pub(crate) fn remove(&mut self, id: ToxicId, ends: &Ends<'_>) -> (bool, Option<Instant>) {
        let Some(i) = self.stages.iter().position(|s| s.id == id) else {
            return (false, None);
        };
        let stage = self.stages.remove(i);
        let now = Instant::now();
        for (_, item) in stage.queue {
            self.forward(i, now, item, ends);
        }
        let next = self.pump(ends);
        if !self.is_toxic() {
            self.cancel_timer();
            self.splice(ends);
        }
        (true, next)
    }

    /// Bytes the source read (callback path).
    pub(crate) fn receive(&mut self, data: Bytes, ends: &Ends<'_>) -> Option<Instant> {
        self.buffered += data.len();
        self.forward(0, Instant::now(), Item::Data(data), ends);
        self.pump(ends)
    }

    /// The source's stream ended.
    pub(crate) fn source_ended(&mut self, ends: &Ends<'_>) -> Option<Instant> {
        if self.input_ended {
            return None;
        }
        self.input_ended = true;
        if self.spliced {
            self.spliced = false;
            self.output_ended = true;
            ends.target.close_connection_after_writing();
            return None;
        }
        self.forward(0, Instant::now(), Item::End, ends);
        self.pump(ends)
    }

    /// The target ended: the lane drops what it holds.
    pub(crate) fn target_ended(&mut self) {
        self.output_ended = true;
        self.spliced = false;
        for stage in &mut self.stages {
            stage.queue.clear();
        }
        self.buffered = 0;
        self.cancel_timer();
    }

    /// The target's output drained: reading may go on.
    pub(crate) fn drained(&mut self, ends: &Ends<'_>) {
        self.update_hold(ends);
    }

    /// The armed timer fired.
    pub(crate) fn timer_fired(&mut self, ends: &Ends<'_>) -> Option<Instant> {
        self.timer = None;
        self.pump(ends)
    }

    /// Arms the timer for `at` (with `arm` making it), unless one fires
    /// earlier already.
    pub(crate) fn arm(
        &mut self,
        at: Instant,
        arm: impl FnOnce(Duration) -> Option<em_timers::Timer>,
    ) {
        if self.timer.as_ref().is_some_and(|(t, _)| *t <= at) {
            return;
        }
        self.cancel_timer();
        if let Some(timer) = arm(at.saturating_duration_since(Instant::now())) {
            self.timer = Some((at, timer));
        }
    }

    fn cancel_timer(&mut self) {
        if let Some((_, timer)) = self.timer.take() {
            timer.cancel();
        }
    }

    /// Puts `item`, arrived at `at`, into stage `i`, or out on the target
    /// if there is no stage `i`.
    fn forward(&mut self, i: usize, at: Instant, item: Item, ends: &Ends<'_>) {
        if let Some(stage) = self.stages.get_mut(i) {
            let (action, dropped) = stage.enqueue(at, item, &mut self.rng);
            self.buffered = self.buffered.saturating_sub(dropped);
            if let Some(action) = action {
                self.run(action, ends);
            }
        } else {
            self.emit(item, ends);
        }
    }

    fn emit(&mut self, item: Item, ends: &Ends<'_>) {
        self.buffered = self.buffered.saturating_sub(item.len());
        if self.output_ended {
            return;
        }
        match item {
            Item::Data(data) => {
                ends.target.send_data(data);
            }
            Item::End => {
                self.output_ended = true;
                tracing::debug!(target_conn = %ends.target.id(), "fault proxy: closing after writing");
                ends.target.close_connection_after_writing();
            }
        }
    }

    fn run(&mut self, action: Action, ends: &Ends<'_>) {
        match action {
            Action::CloseSource => {
                tracing::debug!(source = %ends.source.id(), "fault proxy: data limit reached; closing the sender's side");
                self.input_ended = true;
                ends.source.close_connection();
            }
            Action::CloseBoth => {
                tracing::debug!(source = %ends.source.id(), target_conn = %ends.target.id(), "fault proxy: timeout; closing both sides");
                self.input_ended = true;
                self.target_ended();
                ends.source.close_connection();
                ends.target.close_connection();
            }
            Action::Reset => {
                tracing::debug!(source = %ends.source.id(), target_conn = %ends.target.id(), "fault proxy: resetting");
                self.input_ended = true;
                self.target_ended();
                if let Err(e) = ends
                    .target
                    .with_socket(|s| s.set_linger(Some(Duration::ZERO)))
                {
                    tracing::debug!(error = %e, "fault proxy: cannot set SO_LINGER for a reset");
                }
                ends.target.close_connection();
                ends.source.close_connection();
            }
        }
    }

    /// Moves every item whose time has come, runs due actions, and holds
    /// or resumes the source; returns when it next has something to do.
    fn pump(&mut self, ends: &Ends<'_>) -> Option<Instant> {
        let now = Instant::now();
        for i in 0..self.stages.len() {
            if self.stages[i].deadline().is_some_and(|d| d <= now) {
                self.stages[i].fired = true;
                if let Some(action) = self.stages[i].action() {
                    self.run(action, ends);
                }
            }
            loop {
                let stage = &mut self.stages[i];
                match stage.queue.front() {
                    Some((Some(release), _)) if *release <= now => {
                        let (release, item) = stage.queue.pop_front().expect("a head");
                        self.forward(i + 1, release.expect("a release time"), item, ends);
                    }
                    _ => break,
                }
            }
        }
        self.update_hold(ends);
        self.stages
            .iter()
            .flat_map(|s| [s.queue.front().and_then(|(r, _)| *r), s.deadline()])
            .flatten()
            .min()
    }

    fn update_hold(&mut self, ends: &Ends<'_>) {
        let hold = !self.spliced
            && !self.input_ended
            && (self.buffered > HOLD_AT || ends.target.is_above_high_watermark());
        if hold != self.held {
            self.held = hold;
            if hold {
                ends.source.pause();
            } else {
                ends.source.resume();
            }
        }
    }
}

/// xorshift64*: the jitter and slice sizes, reproducible from the seed.
struct Rng(u64);

impl Rng {
    /// A number in `0..n` (0 when `n` is 0).
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}
