//! eksctl's log lines and task trees: the plan printed before the work, then the tasks run
//! (in parallel with a bound where they are independent), each logging as it finishes.

use std::io::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use podid_types::{Clock as _, SystemClock};

/// How a log line is marked, as eksctl marks them.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Level {
    Info,
    Warning,
}

/// Prints `message` to standard error as eksctl does: `2026-12-04 05:51:59 [ℹ]  message`
/// (UTC).
pub(crate) fn log(level: Level, message: &str) {
    let icon = match level {
        Level::Info => "ℹ",
        Level::Warning => "!",
    };
    let at = SystemClock.now().to_iso8601();
    let stamp = at.get(..19).unwrap_or(&at).replace('T', " ");
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{stamp} [{icon}]  {message}");
}

/// `log(Level::Info, ..)`.
pub(crate) fn info(message: &str) {
    log(Level::Info, message);
}

/// Describes a plan as eksctl's `TaskTree.Describe()`: the top level as `N sequential|parallel
/// tasks: { ... }`, sub-trees as `N ... sub-tasks: { ... }`, one per line.
pub(crate) fn describe_tree(kind: &str, items: &[Vec<String>]) -> String {
    match items {
        [] => "no tasks".to_owned(),
        [only] => format!("1 task: {{ {} }}", describe_item(only)),
        _ => {
            let described: Vec<String> = items.iter().map(|i| describe_item(i)).collect();
            format!(
                "\n{} {kind} tasks: {{ {} \n}}",
                items.len(),
                described.join(", ")
            )
        }
    }
}

/// One item of a tree: a step, or its steps as a sequential sub-tree.
fn describe_item(steps: &[String]) -> String {
    match steps {
        [one] => one.clone(),
        many => {
            let mut out = format!("\n    {} sequential sub-tasks: {{ \n", many.len());
            for step in many {
                out.push_str(&format!("        {step},\n"));
            }
            out.push_str("    }\n");
            out
        }
    }
}

/// Runs `work` on every item, at most `bound` at a time, in order of the items; the results in
/// the same order. Progress (`N/M done`) goes to standard error when it is a terminal.
pub(crate) fn run_parallel<I, R, F>(items: &[I], bound: usize, work: F) -> Vec<R>
where
    I: Sync,
    R: Send,
    F: Fn(&I) -> R + Sync,
{
    let next = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<R>>> = Mutex::new((0..items.len()).map(|_| None).collect());
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr()) && items.len() > 1;
    std::thread::scope(|scope| {
        for _ in 0..bound.clamp(1, items.len().max(1)) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(item) = items.get(i) else {
                        break;
                    };
                    let result = work(item);
                    if let Ok(mut slots) = results.lock() {
                        if let Some(slot) = slots.get_mut(i) {
                            *slot = Some(result);
                        }
                    }
                    let finished = done.fetch_add(1, Ordering::SeqCst) + 1;
                    if terminal {
                        let mut err = std::io::stderr().lock();
                        let _ = write!(err, "\r{finished}/{} done", items.len());
                        if finished == items.len() {
                            let _ = writeln!(err);
                        }
                    }
                }
            });
        }
    });
    results
        .into_inner()
        .unwrap_or_default()
        .into_iter()
        .flatten()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_read_as_eksctl_prints_them() {
        assert_eq!(describe_tree("parallel", &[]), "no tasks");
        assert_eq!(
            describe_tree("parallel", &[vec!["create x".into()]]),
            "1 task: { create x }"
        );
        let plan = describe_tree(
            "parallel",
            &[
                vec![
                    "create role for \"a/b\"".into(),
                    "create association for \"a/b\"".into(),
                ],
                vec!["create association for \"c/d\"".into()],
            ],
        );
        assert_eq!(
            plan,
            "\n2 parallel tasks: { \n    2 sequential sub-tasks: { \n        create role for \"a/b\",\n        create association for \"a/b\",\n    }\n, create association for \"c/d\" \n}"
        );
    }

    #[test]
    fn parallel_work_keeps_the_order_and_the_bound() {
        let running = AtomicUsize::new(0);
        let most = AtomicUsize::new(0);
        let items: Vec<usize> = (0..40).collect();
        let out = run_parallel(&items, 4, |i| {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(std::time::Duration::from_millis(2));
            running.fetch_sub(1, Ordering::SeqCst);
            i * 2
        });
        assert_eq!(out, items.iter().map(|i| i * 2).collect::<Vec<_>>());
        assert!(most.load(Ordering::SeqCst) <= 4);
    }
}
