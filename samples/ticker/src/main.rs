//! `ticker`: a command pod that never exits on its own. Prints `tick N` to
//! stdout once a second, from `tick 1` at start, so the pod's log grows
//! steadily and stopping it (grace period, then forced) can be tested.

use std::io::Write;
use std::time::Duration;

fn main() {
    let mut stdout = std::io::stdout();
    for tick in 1u64.. {
        // A closed stdout is no reason to stop: the runtime decides when to stop.
        let _ = writeln!(stdout, "tick {tick}");
        let _ = stdout.flush();
        std::thread::sleep(Duration::from_secs(1));
    }
}
