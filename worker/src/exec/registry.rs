//! The kernel table: every ONNX op the executor runs, by its exact `op_type`. What is supported fits on
//! one screen; each family's `register` lists its ops.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use super::Builder;
use super::ops::{conv, elementwise, lstm, matmul, norm, pool, reduce, resize, shape};

/// The ops the executor runs, and how each is built. `Constant` is absent: loading turns every
/// `Constant` node into a constant of the IR.
pub fn kernel_table() -> &'static BTreeMap<&'static str, Builder> {
    static TABLE: OnceLock<BTreeMap<&'static str, Builder>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut table = OpTable::default();
        conv::register(&mut table);
        norm::register(&mut table);
        elementwise::register(&mut table);
        matmul::register(&mut table);
        reduce::register(&mut table);
        pool::register(&mut table);
        resize::register(&mut table);
        shape::register(&mut table);
        lstm::register(&mut table);
        table.0
    })
}

/// The table under construction.
#[derive(Default)]
pub struct OpTable(BTreeMap<&'static str, Builder>);

impl OpTable {
    /// Registers `op_type`; registering one twice is a programming error.
    pub fn add(&mut self, op_type: &'static str, builder: Builder) {
        assert!(self.0.insert(op_type, builder).is_none(), "{op_type} registered twice");
    }
}
