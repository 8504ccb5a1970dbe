//! The verifier accepts every instance of the program with room to spare.
//!
//! Each attachment loads its own instance (role and source action are
//! load-time constants), and the verifier walks each with its own dead
//! branches removed. It gives up at 1,000,000 processed instructions; a
//! change that multiplies the paths (states the verifier cannot prune, see
//! `anycast-ebpf/src/verifier.rs`) shows here as a jump in the count long
//! before it makes the program unloadable. At the time of writing the
//! worst instance (member interface, monitor mode) takes about 212,000.

use anycast::loader::{EBPF_OBJECT, Instance, load_instance, load_program};
use anycast_common::{IfaceRole, SourceAction, map_names, program_names};
use anycast_tests::prog::{ProgramUnderTest, TEST_FLOW_TABLE};
use anyhow::Context as _;

/// The budget: 40 % of the kernel's limit, about three times today's worst
/// instance, so that a change that multiplies the paths is seen early.
const BUDGET: u32 = 400_000;

#[test]
#[ignore = "needs root (loads XDP programs)"]
fn every_instance_verifies_well_within_the_kernels_limit() -> anyhow::Result<()> {
    let mut worst = 0;
    for role in [IfaceRole::Edge, IfaceRole::Member] {
        for action in [SourceAction::Drop, SourceAction::Count] {
            let p = ProgramUnderTest::load(role, action)?;
            let n = p.verified_insns(program_names::ANYCAST)?;
            let size = p.translated_size(program_names::ANYCAST)?;
            eprintln!(
                "{role:?}/{action:?}: {n} instructions processed by the verifier, {size} bytes translated"
            );
            worst = worst.max(n);
            // The explain instance of the same interface (`anycast explain`).
            let instance = Instance {
                explain: true,
                shared: &[],
                attachment: 1,
            };
            let sizes = [(map_names::FLOWS, TEST_FLOW_TABLE)];
            let mut ebpf = load_instance(EBPF_OBJECT, None, role, action, &sizes, &instance)?;
            let info = load_program(&mut ebpf, program_names::ANYCAST)?.info()?;
            let n = info
                .verified_instruction_count()
                .context("verified instructions")?;
            let size = info.size_translated().context("translated size")?;
            eprintln!(
                "{role:?}/{action:?} explain: {n} instructions processed by the verifier, {size} bytes translated"
            );
            worst = worst.max(n);
        }
    }
    assert!(
        worst <= BUDGET,
        "the verifier processed {worst} instructions (budget {BUDGET}, limit 1,000,000)"
    );
    Ok(())
}
