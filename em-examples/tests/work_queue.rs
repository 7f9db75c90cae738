//! The `work_queue` example on a throw-away RabbitMQ broker: two consumers
//! share the jobs, each done exactly once; a consumer killed mid-job has
//! its unfinished jobs redelivered to the next one; the command line
//! refuses a prefetch of 0.

mod support;

#[path = "../../tests/tests/support/rabbitmq.rs"]
#[allow(dead_code, unreachable_pub)]
mod rabbitmq;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use rabbitmq::RabbitMq;

const BIN: &str = env!("CARGO_BIN_EXE_work_queue");

/// The longest a step that involves the broker may take.
const LIMIT: Duration = Duration::from_secs(60);

/// The lines some children wrote to their pipes so far, each tagged with
/// the number of the child that wrote it, collected by one thread per
/// pipe; and how many pipes are still open. One `Lines` may collect
/// several children's output, to wait for something from any of them.
#[derive(Default)]
struct Lines {
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Default)]
struct State {
    lines: Vec<(usize, String)>,
    open: usize,
}

impl Lines {
    /// Collects `pipe`'s lines, tagged `tag`, on a thread of their own.
    fn collect(self: &Arc<Self>, tag: usize, pipe: impl Read + Send + 'static) {
        self.state.lock().unwrap().open += 1;
        let shared = self.clone();
        thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                shared.state.lock().unwrap().lines.push((tag, line));
                shared.changed.notify_all();
            }
            shared.state.lock().unwrap().open -= 1;
            shared.changed.notify_all();
        });
    }

    /// Waits (at most `limit`) until `ready` holds for the lines so far;
    /// returns them. Panics, saying `what`, if it does not.
    fn wait_until(
        &self,
        what: &str,
        limit: Duration,
        ready: impl Fn(&[(usize, String)]) -> bool,
    ) -> Vec<(usize, String)> {
        let deadline = Instant::now() + limit;
        let mut state = self.state.lock().unwrap();
        loop {
            if ready(&state.lines) {
                return state.lines.clone();
            }
            let now = Instant::now();
            assert!(
                now < deadline && state.open > 0,
                "{what}: not within {limit:?}{}; the lines so far:\n{}",
                if state.open == 0 {
                    " (output closed)"
                } else {
                    ""
                },
                show(&state.lines)
            );
            state = self.changed.wait_timeout(state, deadline - now).unwrap().0;
        }
    }

    /// Waits (at most `limit`) until every pipe is closed; returns every
    /// line.
    fn wait_closed(&self, what: &str, limit: Duration) -> Vec<(usize, String)> {
        let deadline = Instant::now() + limit;
        let mut state = self.state.lock().unwrap();
        while state.open > 0 {
            let now = Instant::now();
            assert!(now < deadline, "{what}: output not closed within {limit:?}");
            state = self.changed.wait_timeout(state, deadline - now).unwrap().0;
        }
        state.lines.clone()
    }

    /// The lines so far, for failure messages.
    fn show(&self) -> String {
        show(&self.state.lock().unwrap().lines)
    }
}

/// Tagged lines, one a line.
fn show(lines: &[(usize, String)]) -> String {
    lines
        .iter()
        .map(|(tag, line)| format!("[{tag}] {line}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A `work_queue consume` process; SIGKILLed (and reaped) when dropped.
struct Consumer {
    child: Child,
    /// Its stderr (the log), tagged 0.
    stderr: Arc<Lines>,
}

impl Consumer {
    /// Starts `work_queue consume` on `rabbit`'s `queue` with `args`, its
    /// `working on it` lines logged (`RUST_LOG=work_queue=info`); its
    /// stdout goes to `stdout`, tagged `tag`.
    fn start(
        rabbit: &RabbitMq,
        queue: &str,
        args: &[&str],
        stdout: &Arc<Lines>,
        tag: usize,
    ) -> Consumer {
        let mut child = Command::new(BIN)
            .args(["consume", "--amqp", &rabbit.url(), "--queue", queue])
            .args(args)
            .env("RUST_LOG", "work_queue=info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn work_queue consume");
        stdout.collect(tag, child.stdout.take().unwrap());
        let stderr = Arc::new(Lines::default());
        stderr.collect(0, child.stderr.take().unwrap());
        Consumer { child, stderr }
    }

    /// Waits (at most `limit`) for it to exit by itself; panics with its
    /// log if it does not.
    fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the consumer did not exit within {limit:?}; its log:\n{}",
                self.stderr.show()
            );
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGKILLs it and reaps it.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `work_queue produce` of `jobs` jobs to `queue`: exits 0 having printed
/// `published N jobs to QUEUE`, and nothing else, on stdout.
fn produce(rabbit: &RabbitMq, queue: &str, jobs: u64) {
    let out = support::output_within(
        BIN,
        &[
            "produce",
            "--amqp",
            &rabbit.url(),
            "--queue",
            queue,
            "--jobs",
            &jobs.to_string(),
        ],
        &[],
        LIMIT,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "produce: {}; stdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout, format!("published {jobs} jobs to {queue}\n"));
}

/// `job-1` … `job-N`.
fn job_names(n: u64) -> BTreeSet<String> {
    (1..=n).map(|k| format!("job-{k}")).collect()
}

/// The jobs in `done JOB` lines tagged `tag`, in order (repeats kept).
fn done(stdout: &[(usize, String)], tag: usize) -> Vec<String> {
    stdout
        .iter()
        .filter(|(t, _)| *t == tag)
        .filter_map(|(_, line)| line.strip_prefix("done "))
        .map(str::to_owned)
        .collect()
}

/// The jobs taken, from the log's `working on it job=JOB redelivered=BOOL`
/// lines: (job, redelivered), in order.
fn taken(stderr: &[(usize, String)]) -> Vec<(String, bool)> {
    stderr
        .iter()
        .map(|(_, line)| line)
        .filter(|line| line.contains("working on it"))
        .map(|line| {
            let field = |name: &str| {
                line.split_whitespace()
                    .find_map(|w| w.strip_prefix(name))
                    .unwrap_or_else(|| panic!("no {name} in {line:?}"))
                    .to_owned()
            };
            let redelivered = match field("redelivered=").as_str() {
                "true" => true,
                "false" => false,
                other => panic!("redelivered={other} in {line:?}"),
            };
            (field("job="), redelivered)
        })
        .collect()
}

/// How many times each job appears.
fn tally<'a>(jobs: impl IntoIterator<Item = &'a String>) -> BTreeMap<&'a str, usize> {
    let mut counts = BTreeMap::new();
    for job in jobs {
        *counts.entry(job.as_str()).or_default() += 1;
    }
    counts
}

/// 20 jobs, two consumers with prefetch 2 started together: between them
/// they do every job, each exactly once (nobody crashed, so no job comes
/// twice), and RabbitMQ gives each of them some.
#[test]
fn work_queue_with_rabbitmq_two_consumers_share_the_jobs_each_done_once() {
    let rabbit = RabbitMq::start("wq-share");
    let queue = "wq-share";
    produce(&rabbit, queue, 20);
    let args = ["--prefetch", "2", "--work-ms", "20"];
    let stdout = Arc::new(Lines::default());
    let mut consumers = [
        Consumer::start(&rabbit, queue, &args, &stdout, 0),
        Consumer::start(&rabbit, queue, &args, &stdout, 1),
    ];
    let all = job_names(20);
    stdout.wait_until("every job done", LIMIT, |lines| {
        let union: BTreeSet<String> = (0..2).flat_map(|tag| done(lines, tag)).collect();
        assert!(union.is_subset(&all), "jobs nobody produced: {union:?}");
        union == all
    });
    // Everything they printed: stop them, and read to the end.
    for consumer in &mut consumers {
        consumer.kill();
    }
    let lines = stdout.wait_closed("the consumers", Duration::from_secs(10));
    let each = [done(&lines, 0), done(&lines, 1)];
    let counts = tally(each.iter().flatten());
    assert_eq!(counts.len(), 20, "{each:?}");
    assert!(
        counts.values().all(|&n| n == 1),
        "a job done twice with no crash: {counts:?}"
    );
    for (i, jobs) in each.iter().enumerate() {
        assert!(!jobs.is_empty(), "consumer {i} got no job: {each:?}");
    }
}

/// A consumer killed (SIGKILL) with 3 jobs taken and none finished: the
/// broker gives those 3 to the next consumer, flagged redelivered, and
/// the other 3 unflagged; the next one does all 6 and exits (`--count`).
#[test]
fn work_queue_with_rabbitmq_redelivers_the_jobs_of_a_killed_consumer() {
    let rabbit = RabbitMq::start("wq-crash");
    let queue = "wq-crash";
    produce(&rabbit, queue, 6);
    let a_out = Arc::new(Lines::default());
    let mut a = Consumer::start(
        &rabbit,
        queue,
        &["--prefetch", "3", "--work-ms", "60000"],
        &a_out,
        0,
    );
    let a_taken = taken(
        &a.stderr
            .wait_until("A takes 3 jobs", LIMIT, |lines| taken(lines).len() >= 3),
    );
    assert_eq!(a_taken.len(), 3, "more than the prefetch: {a_taken:?}");
    assert!(a_taken.iter().all(|(_, r)| !r), "{a_taken:?}");
    let a_jobs: BTreeSet<String> = a_taken.into_iter().map(|(job, _)| job).collect();
    assert_eq!(a_jobs.len(), 3, "a job taken twice: {a_jobs:?}");
    a.kill();
    let a_done = done(&a_out.wait_closed("A", Duration::from_secs(10)), 0);
    assert!(a_done.is_empty(), "A finished {a_done:?}");

    let b_out = Arc::new(Lines::default());
    let mut b = Consumer::start(
        &rabbit,
        queue,
        &["--prefetch", "3", "--work-ms", "10", "--count", "6"],
        &b_out,
        0,
    );
    let status = b.wait_exit(LIMIT);
    let b_done = done(&b_out.wait_closed("B", Duration::from_secs(10)), 0);
    let b_log = b.stderr.wait_closed("B's log", Duration::from_secs(10));
    assert!(status.success(), "B: {status}; its log:\n{}", show(&b_log));
    let counts = tally(&b_done);
    assert_eq!(counts.len(), 6, "{b_done:?}");
    assert!(counts.values().all(|&n| n == 1), "{b_done:?}");
    assert_eq!(
        b_done.iter().cloned().collect::<BTreeSet<_>>(),
        job_names(6)
    );
    let b_taken = taken(&b_log);
    assert_eq!(b_taken.len(), 6, "{b_taken:?}");
    let jobs_where = |redelivered: bool| -> BTreeSet<String> {
        b_taken
            .iter()
            .filter(|(_, r)| *r == redelivered)
            .map(|(job, _)| job.clone())
            .collect()
    };
    assert_eq!(jobs_where(true), a_jobs, "redelivered: exactly what A had");
    assert_eq!(
        jobs_where(false),
        job_names(6).difference(&a_jobs).cloned().collect(),
        "the others, first delivery"
    );
}

/// `--count 3`: the consumer does 3 jobs, acknowledges them and exits 0.
/// Acknowledged means the broker has them: a job produced after is the
/// only one the next consumer gets (an unacknowledged one would come
/// first, flagged redelivered, and be done twice with nobody crashing).
#[test]
fn work_queue_with_rabbitmq_count_acknowledges_every_job_before_exiting() {
    let rabbit = RabbitMq::start("wq-count");
    let queue = "wq-count";
    produce(&rabbit, queue, 3);
    let out = Arc::new(Lines::default());
    let mut b = Consumer::start(
        &rabbit,
        queue,
        &["--prefetch", "1", "--work-ms", "10", "--count", "3"],
        &out,
        0,
    );
    let status = b.wait_exit(LIMIT);
    let log = b.stderr.wait_closed("its log", Duration::from_secs(10));
    assert!(status.success(), "{status}; its log:\n{}", show(&log));
    let b_done = done(&out.wait_closed("its output", Duration::from_secs(10)), 0);
    assert_eq!(b_done, ["job-1", "job-2", "job-3"]);

    produce(&rabbit, queue, 1);
    let out = Arc::new(Lines::default());
    let mut c = Consumer::start(
        &rabbit,
        queue,
        &["--prefetch", "10", "--work-ms", "10", "--count", "1"],
        &out,
        0,
    );
    let status = c.wait_exit(LIMIT);
    let log = c.stderr.wait_closed("its log", Duration::from_secs(10));
    assert!(status.success(), "{status}; its log:\n{}", show(&log));
    assert_eq!(
        taken(&log),
        [("job-1".to_owned(), false)],
        "the first consumer exited with jobs it printed done unacknowledged"
    );
}

/// No broker needed: clap refuses a prefetch of 0 and 0 jobs (exit 2,
/// naming the flag).
#[test]
fn work_queue_refuses_a_prefetch_of_0_or_0_jobs_without_a_broker() {
    for args in [["consume", "--prefetch", "0"], ["produce", "--jobs", "0"]] {
        let out = support::output_within(BIN, &args, &[], Duration::from_secs(5));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(args[1]), "{args:?}: {stderr}");
    }
}
