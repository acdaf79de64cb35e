//! `grrm selfcheck` on this adapter (lavapipe in CI, where attention runs the Rows kernel; the
//! GPU machine runs the tensor-core kernel): every check passes, and the report covers the
//! matmul layouts and attention's forward and three gradients with the kernel `Auto` picks.

mod common;

use common::*;
use grrm_model::kernels::attention::AttentionHeads;

#[test]
fn selfcheck_passes_and_covers_attention() {
    let ctx = ctx();
    let report = grrm_model::selfcheck::run(&ctx).unwrap();
    eprintln!("{report}");
    assert!(report.all_passed(), "{report}");
    let kernel = AttentionHeads::new(4, 2, 64).resolved_kernel(&ctx);
    for part in ["out", "dq", "dk", "dv"] {
        let name = format!("attention {kernel:?} B2 T77 4/2 D64 {part}");
        assert!(
            report.0.iter().any(|r| r.name == name),
            "no check named {name:?} in\n{report}"
        );
    }
    assert!(
        report
            .0
            .iter()
            .filter(|r| r.name.starts_with("matmul"))
            .count()
            >= 9
    );
}
