//! `cargo run --example seed_scenarios`: the seed suite's scenarios on the core, each
//! report printed in the seed's layout, then a one-line verdict per scenario.

// Shared with tests/scenarios.rs, which reads the parts this printout does not.
#[allow(dead_code)]
mod scenarios;

fn main() {
    let outcomes = scenarios::all();
    for o in &outcomes {
        println!("##### {} #####", o.name);
        println!("{}", o.tracker.report_text(o.now_ms));
        println!("\nFACTS:");
        for (name, value) in &o.facts {
            println!("  {name}: {value}");
        }
        println!();
    }
    println!("VERDICTS:");
    for o in &outcomes {
        let a = o.tracker.analyze(o.now_ms);
        println!(
            "  {:<24} {:<15} score {:.1}%, {} violations, {} thread ids",
            o.name, o.verdict, a.consistency_score, a.total_violations, a.unique_thread_ids_found
        );
    }
}
