//! Per-problem time of the assignment solver, Rust only (no Python call):
//! the paths for small problems (one line; a side of 2 or 3 by search; the
//! fixed buffers; wider-than-tall problems of 4+ rows are routed to the
//! general solver, so they read alike) against the general solver, on
//! the same uniform [0, 1) problems, interleaved in one process, CPU time of
//! the thread, min over rounds (steadier than wall time or a mean on a
//! loaded machine). One thread.
//!
//! `cargo run --release -p csipose-core --example assign_timing [rounds] [case]`

use std::hint::black_box;
use std::time::Instant;

use csipose_core::matching::{Mode, Solver, assign_padded};

/// splitmix64 in [0, 1).
fn rng(seed: &mut u64) -> f64 {
    *seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *seed;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) as f64 / (u64::MAX as f64 + 1.0)
}

#[repr(C)]
struct Timespec {
    sec: i64,
    nsec: i64,
}

unsafe extern "C" {
    fn clock_gettime(clock: i32, out: *mut Timespec) -> i32;
}

/// This process's CPU time in nanoseconds (Linux x86-64
/// `CLOCK_PROCESS_CPUTIME_ID`, all threads), so that time spent descheduled on a loaded
/// machine does not count.
fn cpu_ns() -> Option<u64> {
    let mut t = Timespec { sec: 0, nsec: 0 };
    // SAFETY: `t` is a valid, writable timespec (two i64 on x86-64 Linux).
    let rc = unsafe { clock_gettime(2, &mut t) };
    (rc == 0).then(|| t.sec as u64 * 1_000_000_000 + t.nsec as u64)
}

/// Nanoseconds per problem for one pass over `problems`.
fn pass(solver: &mut Solver, problems: &[(Vec<f64>, usize, usize)], general: bool) -> f64 {
    let (start, cpu) = (Instant::now(), cpu_ns());
    let mut pairs = 0;
    for (cost, r, c) in problems {
        let out = if general {
            solver.solve_general(cost, *r, *c, *c, Mode::Strict)
        } else {
            solver.solve_strided(cost, *r, *c, *c, Mode::Strict)
        };
        pairs += out.map_or(0, <[_]>::len);
    }
    black_box(pairs);
    let ns = match (cpu, cpu_ns()) {
        (Some(a), Some(b)) => b.saturating_sub(a) as f64,
        _ => start.elapsed().as_nanos() as f64,
    };
    ns / problems.len() as f64
}

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|x| x.parse().ok())
        .unwrap_or(30);
    let mut seed = 1;
    let mut make = |n: usize, shape: &dyn Fn(usize) -> (usize, usize)| {
        (0..n)
            .map(|b| {
                let (r, c) = shape(b);
                ((0..r * c).map(|_| rng(&mut seed)).collect(), r, c)
            })
            .collect::<Vec<_>>()
    };
    let cases = [
        ("2x2", make(10_000, &|_| (2, 2))),
        ("4x4", make(10_000, &|_| (4, 4))),
        ("2x8", make(10_000, &|_| (2, 8))),
        ("3x8", make(10_000, &|_| (3, 8))),
        ("8x3", make(10_000, &|_| (8, 3))),
        ("4x8", make(10_000, &|_| (4, 8))),
        ("7x8", make(10_000, &|_| (7, 8))),
        ("8x5", make(10_000, &|_| (8, 5))),
        ("8x8", make(10_000, &|_| (8, 8))),
        ("mixed 2-8", make(10_000, &|b| (2 + b % 7, 2 + (b / 7) % 7))),
        ("12x12", make(2_000, &|_| (12, 12))),
        ("16x16", make(2_000, &|_| (16, 16))),
        ("32x32", make(500, &|_| (32, 32))),
    ];
    // An optional second argument keeps only the cases of that name (for `perf`).
    let only = std::env::args().nth(2);
    let mut solver = Solver::new();
    println!(
        "case        small-path ns  general ns  general/small  (min of {rounds} interleaved rounds)"
    );
    for (name, problems) in &cases {
        if only.as_ref().is_some_and(|o| o != name) {
            continue;
        }
        let (mut fast, mut slow) = (f64::INFINITY, f64::INFINITY);
        for _ in 0..rounds {
            fast = fast.min(pass(&mut solver, problems, false));
            slow = slow.min(pass(&mut solver, problems, true));
        }
        println!("{name:<10} {fast:>14.1} {slow:>11.1} {:>14.2}", slow / fast);
    }
    // The batch driver on one thread: a dense [10,000, 8, 8] array, against
    // a plain loop of the same solves (the difference is the driver's cost).
    if only.as_ref().is_none_or(|o| o == "batch") {
        let n = 10_000;
        let flat: Vec<f64> = (0..n * 64).map(|_| rng(&mut seed)).collect();
        let _ = csipose_core::threads::set_num_threads(1);
        let (mut batch, mut plain, mut inline) = (f64::INFINITY, f64::INFINITY, f64::INFINITY);
        for _ in 0..rounds {
            let t = cpu_ns();
            let out = assign_padded(&flat, [n, 8, 8], None, Mode::Strict);
            black_box(out.map(|o| o.rows().len()).ok());
            batch = batch.min(cpu_ns().zip(t).map_or(0, |(b, a)| b - a) as f64 / n as f64);
            let t = cpu_ns();
            for k in 0..20 {
                let part = &flat[k * 500 * 64..(k + 1) * 500 * 64];
                let out = assign_padded(part, [500, 8, 8], None, Mode::Strict);
                black_box(out.map(|o| o.rows().len()).ok());
            }
            inline = inline.min(cpu_ns().zip(t).map_or(0, |(b, a)| b - a) as f64 / n as f64);
            let t = cpu_ns();
            for b in 0..n {
                let out = solver.solve_strided(&flat[b * 64..(b + 1) * 64], 8, 8, 8, Mode::Strict);
                black_box(out.map(<[_]>::len).ok());
            }
            plain = plain.min(cpu_ns().zip(t).map_or(0, |(b, a)| b - a) as f64 / n as f64);
        }
        println!(
            "8x8 assign_padded (1 thread) {batch:.1} ns/problem, in calls of 500 (on the caller) {inline:.1}, plain loop {plain:.1}"
        );
    }
}
