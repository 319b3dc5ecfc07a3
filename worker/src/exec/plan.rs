//! The execution plan: slots for intermediate tensors, each freed after its last consumer.

use std::collections::HashMap;

use anyhow::{Context, Result, bail};
use sensgrid_model::ir::{DataType, Graph, TensorData};
use tch::{Device, Kind, Tensor};

use super::{BuildCtx, Kernel, ops, registry};

/// Where a node input comes from.
enum Source {
    Absent,
    Slot(usize),
    Constant(usize),
}

struct Step {
    name: String,
    op_type: String,
    kernel: Box<dyn Kernel>,
    inputs: Vec<Source>,
    outputs: Vec<(String, Option<usize>)>,
    /// Slots whose last reader is this step.
    free_after: Vec<usize>,
}

/// A loaded graph, ready to run on its device.
pub struct Executor {
    device: Device,
    constants: Vec<Tensor>,
    constant_index: HashMap<String, usize>,
    steps: Vec<Step>,
    slot_count: usize,
    inputs: Vec<(String, usize)>,
    outputs: Vec<(String, Source)>,
}

/// The libtorch kind of an ONNX element type.
pub fn kind_of(dtype: DataType) -> Result<Kind> {
    Ok(match dtype {
        DataType::Float => Kind::Float,
        DataType::Double => Kind::Double,
        DataType::Float16 => Kind::Half,
        DataType::Bfloat16 => Kind::BFloat16,
        DataType::Int64 => Kind::Int64,
        DataType::Int32 => Kind::Int,
        DataType::Int16 => Kind::Int16,
        DataType::Int8 => Kind::Int8,
        DataType::Uint8 => Kind::Uint8,
        DataType::Bool => Kind::Bool,
        other => bail!("element type {other} is not supported by the executor"),
    })
}

impl Executor {
    /// Checks every node against the kernel table, builds the kernels and uploads the constants.
    ///
    /// # Errors
    /// The first node whose op or attributes are not supported, named with its op.
    pub fn new(graph: &Graph, device: Device) -> Result<Self> {
        let _guard = tch::no_grad_guard();
        let mut constant_index = HashMap::new();
        let mut by_name = HashMap::new();
        let mut constants = Vec::with_capacity(graph.constants.len());
        for (name, data) in &graph.constants {
            let kind = kind_of(data.dtype()).with_context(|| format!("constant '{name}'"))?;
            let dims: Vec<i64> = data.dims().iter().map(|&d| d as i64).collect();
            let host = Tensor::f_from_data_size(data.bytes(), &dims, kind)?;
            // Integer constants feed shape arithmetic, which reads values on the host: they stay there.
            let tensor = if ops::is_float(kind) {
                host.to_device(device)
            } else {
                host
            };
            constant_index.insert(name.clone(), constants.len());
            by_name.insert(name.clone(), tensor.shallow_clone());
            constants.push(tensor);
        }

        // The table has exactly the ops of `SUPPORTED_OPS` (a test checks it): every node has a kernel after this.
        sensgrid_model::ops::check_supported(graph)?;
        let table = registry::kernel_table();

        let mut slot_of: HashMap<&str, usize> = HashMap::new();
        let mut inputs = Vec::new();
        for input in &graph.inputs {
            slot_of.insert(&input.name, slot_of.len());
            inputs.push((input.name.clone(), slot_of.len() - 1));
        }
        let source = |name: &str, slot_of: &HashMap<&str, usize>| -> Source {
            if name.is_empty() {
                Source::Absent
            } else if let Some(&slot) = slot_of.get(name) {
                Source::Slot(slot)
            } else {
                Source::Constant(constant_index[name])
            }
        };
        let mut steps = Vec::with_capacity(graph.nodes.len());
        for node in &graph.nodes {
            let ctx = BuildCtx {
                node,
                opset: graph.opset,
                constants: &by_name,
            };
            let kernel = (table[node.op_type.as_str()])(&ctx)?;
            let step_inputs = node.inputs.iter().map(|name| source(name, &slot_of)).collect();
            let outputs = node
                .outputs
                .iter()
                .map(|name| {
                    let slot = (!name.is_empty()).then(|| {
                        slot_of.insert(name, slot_of.len());
                        slot_of.len() - 1
                    });
                    (name.clone(), slot)
                })
                .collect();
            steps.push(Step {
                name: node.name.clone(),
                op_type: node.op_type.clone(),
                kernel,
                inputs: step_inputs,
                outputs,
                free_after: Vec::new(),
            });
        }
        let outputs: Vec<(String, Source)> = graph
            .outputs
            .iter()
            .map(|o| (o.name.clone(), source(&o.name, &slot_of)))
            .collect();

        // A slot is freed after its last reader, unless it is a graph output.
        let mut last_reader: HashMap<usize, usize> = HashMap::new();
        for (i, step) in steps.iter().enumerate() {
            for input in &step.inputs {
                if let Source::Slot(slot) = input {
                    last_reader.insert(*slot, i);
                }
            }
        }
        for (_, output) in &outputs {
            if let Source::Slot(slot) = output {
                last_reader.remove(slot);
            }
        }
        for (slot, step) in last_reader {
            steps[step].free_after.push(slot);
        }
        Ok(Self {
            device,
            constants,
            constant_index,
            steps,
            slot_count: slot_of.len(),
            inputs,
            outputs,
        })
    }

    /// The constant called `name`, as the kernels read it.
    pub fn constant(&self, name: &str) -> Option<&Tensor> {
        self.constant_index.get(name).map(|&i| &self.constants[i])
    }

    /// Overwrites the constant called `name` in place with `data` (same shape and type), as masking does.
    ///
    /// # Errors
    /// An unknown name, or data of another shape or type.
    pub fn set_constant(&mut self, name: &str, data: &TensorData) -> Result<()> {
        let _guard = tch::no_grad_guard();
        let index = *self
            .constant_index
            .get(name)
            .with_context(|| format!("the model has no constant '{name}'"))?;
        let dims: Vec<i64> = data.dims().iter().map(|&d| d as i64).collect();
        let host = Tensor::f_from_data_size(data.bytes(), &dims, kind_of(data.dtype())?)?;
        let target = &mut self.constants[index];
        if target.size() != dims || target.kind() != host.kind() {
            bail!(
                "constant '{name}': {:?} {:?} cannot take {:?} {:?}",
                target.size(),
                target.kind(),
                dims,
                host.kind()
            );
        }
        target.f_copy_(&host)?;
        Ok(())
    }

    /// The names of the graph outputs, in order.
    pub fn output_names(&self) -> impl Iterator<Item = &str> {
        self.outputs.iter().map(|(name, _)| name.as_str())
    }

    /// Runs the graph on `inputs` (one per graph input, moved to the device) and returns its outputs.
    ///
    /// # Errors
    /// A wrong number of inputs, or a node that fails (named, with its op).
    pub fn run(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        self.run_tapped(inputs, &mut |_, tensor| tensor)
    }

    /// Like [`run`](Self::run), and hands `tap` every tensor a node produces, by name, as it is produced;
    /// what `tap` returns is what later nodes consume. Returning the tensor unchanged observes the run;
    /// returning a reference value instead checks each node on exactly the reference's inputs.
    pub fn run_tapped(&self, inputs: &[Tensor], tap: &mut dyn FnMut(&str, Tensor) -> Tensor) -> Result<Vec<Tensor>> {
        let _guard = tch::no_grad_guard();
        if inputs.len() != self.inputs.len() {
            bail!("the model takes {} input(s), got {}", self.inputs.len(), inputs.len());
        }
        let mut slots: Vec<Option<Tensor>> = (0..self.slot_count).map(|_| None).collect();
        for ((_, slot), tensor) in self.inputs.iter().zip(inputs) {
            slots[*slot] = Some(tensor.to_device(self.device));
        }
        for step in &self.steps {
            let outputs = {
                let args: Vec<Option<&Tensor>> = step
                    .inputs
                    .iter()
                    .map(|source| match source {
                        Source::Absent => None,
                        Source::Slot(slot) => slots[*slot].as_ref(),
                        Source::Constant(index) => Some(&self.constants[*index]),
                    })
                    .collect();
                step.kernel
                    .run(&args)
                    .with_context(|| format!("evaluating node '{}' ({})", step.name, step.op_type))?
            };
            for ((name, slot), tensor) in step.outputs.iter().zip(outputs) {
                if let Some(slot) = slot {
                    slots[*slot] = Some(tap(name, tensor));
                }
            }
            for slot in &step.free_after {
                slots[*slot] = None;
            }
        }
        self.outputs
            .iter()
            .map(|(name, source)| match source {
                Source::Slot(slot) => slots[*slot]
                    .take()
                    .with_context(|| format!("output '{name}' was not computed")),
                Source::Constant(index) => Ok(self.constants[*index].shallow_clone()),
                Source::Absent => bail!("output with an empty name"),
            })
            .collect()
    }
}
