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

/// eksctl's warning that a plan changed nothing.
pub(crate) fn plan_warning() {
    log(
        Level::Warning,
        "no changes were applied, run again with '--approve' to apply the changes",
    );
}

/// `log(Level::Info, ..)`.
pub(crate) fn info(message: &str) {
    log(Level::Info, message);
}

/// A plan: tasks, run one after another or side by side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Tree {
    Task(String),
    Sequential(Vec<Tree>),
    Parallel(Vec<Tree>),
}

impl Tree {
    /// eksctl's `TaskTree.Describe()`: `N sequential|parallel tasks: { ... }` at the top,
    /// sub-trees as `N ... sub-tasks: { ... }`, one task per line, indented by depth.
    pub(crate) fn describe(&self) -> String {
        match self.children() {
            None => self.describe_at(0),
            Some([]) => "no tasks".to_owned(),
            Some([only]) => format!("1 task: {{ {} }}", only.describe_at(0)),
            Some(children) => {
                let described: Vec<String> = children.iter().map(|c| c.describe_at(0)).collect();
                format!(
                    "\n{} {} tasks: {{ {} \n}}",
                    children.len(),
                    self.kind(),
                    described.join(", ")
                )
            }
        }
    }

    fn describe_at(&self, depth: usize) -> String {
        match (self, self.children()) {
            (Self::Task(text), _) => text.clone(),
            (_, Some([only])) => only.describe_at(depth),
            (_, children) => {
                let children = children.unwrap_or_default();
                let pad = " ".repeat(4 * (depth + 1));
                let mut out = format!("\n{pad}{} {} sub-tasks: {{ \n", children.len(), self.kind());
                for child in children {
                    out.push_str(&format!("{pad}    {},\n", child.describe_at(depth + 1)));
                }
                out.push_str(&format!("{pad}}}\n"));
                out
            }
        }
    }

    fn children(&self) -> Option<&[Tree]> {
        match self {
            Self::Task(_) => None,
            Self::Sequential(c) | Self::Parallel(c) => Some(c),
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Self::Parallel(_) => "parallel",
            _ => "sequential",
        }
    }
}

/// A parallel plan of items, each a sequence of steps (a step alone is a task).
pub(crate) fn describe_tree(items: &[Vec<String>]) -> String {
    Tree::Parallel(
        items
            .iter()
            .map(|steps| match steps.as_slice() {
                [one] => Tree::Task(one.clone()),
                many => Tree::Sequential(many.iter().cloned().map(Tree::Task).collect()),
            })
            .collect(),
    )
    .describe()
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
                    if let Ok(mut slots) = results.lock()
                        && let Some(slot) = slots.get_mut(i)
                    {
                        *slot = Some(result);
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
        assert_eq!(describe_tree(&[]), "no tasks");
        assert_eq!(
            describe_tree(&[vec!["create x".into()]]),
            "1 task: { create x }"
        );
        let plan = describe_tree(&[
            vec![
                "create role for \"a/b\"".into(),
                "create association for \"a/b\"".into(),
            ],
            vec!["create association for \"c/d\"".into()],
        ]);
        assert_eq!(
            plan,
            "\n2 parallel tasks: { \n    2 sequential sub-tasks: { \n        create role for \"a/b\",\n        create association for \"a/b\",\n    }\n, create association for \"c/d\" \n}"
        );
    }

    #[test]
    fn the_migration_plan_reads_as_the_seed_shows_it() {
        let task = |t: &str| Tree::Task(t.to_owned());
        let plan = Tree::Sequential(vec![
            task("install eks-pod-identity-agent addon"),
            Tree::Parallel(vec![task("update a"), task("update b")]),
            Tree::Parallel(vec![task("create c"), task("create d")]),
        ]);
        assert_eq!(
            plan.describe(),
            "\n3 sequential tasks: { install eks-pod-identity-agent addon, \n    2 parallel sub-tasks: { \n        update a,\n        update b,\n    }\n, \n    2 parallel sub-tasks: { \n        create c,\n        create d,\n    }\n \n}"
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
