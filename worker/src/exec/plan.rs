//! The execution plan: slots for intermediate tensors, each freed after its last consumer; the fusion pass
//! that joins a Conv and the nodes after it into one step is `fusion`.
//!
//! A run can also be cut in two at a step ([`Executor::run_prefix`], [`Executor::run_from`]): the tensors alive
//! there (the [`Boundary`]) are all the rest of the run needs, so a masked cell whose first masked constant is
//! read at that step reuses the unmasked run's boundary and computes only the steps after it (issue 16).

use std::collections::{HashMap, HashSet};

use anyhow::{Context, Result, bail};
use sensgrid_eval::config::Precision;
use sensgrid_model::ir::{DataType, Graph, TensorData};
use tch::{Device, Kind, Tensor};

mod fusion;

use super::ops;
use super::{BuildCtx, Kernel, registry};

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
    /// For a fused step, the nodes it stands for, in order: a tapped run runs them one by one (their
    /// intermediate outputs have slots of their own, which only such runs fill). Empty for a single node.
    parts: Vec<Step>,
}

/// A loaded graph, ready to run on its device.
pub struct Executor {
    device: Device,
    /// Where float32 values of the model are held and computed in fp16 (`Sensitivity.precision: fp16`): the
    /// float constants, the inputs and every float32 tensor a node makes; the outputs are float32 again.
    half: bool,
    constants: Vec<Tensor>,
    constant_index: HashMap<String, usize>,
    steps: Vec<Step>,
    slot_count: usize,
    inputs: Vec<(String, usize)>,
    outputs: Vec<(String, Source)>,
    /// Per slot, the last step that reads it: `usize::MAX` for graph outputs, `None` when nothing reads it.
    last_use: Vec<Option<usize>>,
}

/// The tensors alive between two steps of a run: every slot produced before the step (graph inputs
/// included) that the step or a later one reads, or that is a graph output.
///
/// The kernels never write to their inputs, so a boundary can be run from any number of times, each run
/// giving the same outputs as the full run on the same constants.
pub struct Boundary {
    /// The step the boundary is at.
    step: usize,
    slots: Vec<(usize, Tensor)>,
}

impl Boundary {
    /// The step the boundary is at: [`Executor::run_from`] continues there.
    pub fn step(&self) -> usize {
        self.step
    }

    /// The bytes its tensors hold (tensors that share storage are counted once each).
    pub fn bytes(&self) -> usize {
        self.slots
            .iter()
            .map(|(_, t)| t.numel() * t.kind().elt_size_in_bytes())
            .sum()
    }
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

/// What a tapped run hands every tensor a node produces to, by name; later nodes consume what it returns.
type Tap<'a> = dyn FnMut(&str, Tensor) -> Tensor + 'a;

impl Executor {
    /// Checks every node against the kernel table, builds the kernels and uploads the constants; runs in
    /// float32.
    ///
    /// # Errors
    /// The first node whose op or attributes are not supported, named with its op.
    pub fn new(graph: &Graph, device: Device) -> Result<Self> {
        Self::with_precision(graph, device, Precision::Fp32)
    }

    /// [`new`](Self::new), running the model's float32 part in `precision`. In fp16 the float32 constants are
    /// uploaded as fp16, the inputs converted on entry, every float32 tensor a node makes (a Cast, a
    /// ConstantOfShape, a promotion) converted as it is stored, and the outputs returned as float32, so the
    /// model's callers see no difference but rounding. What the kernels read on the host (Resize scales, Clip
    /// bounds, shapes) reads the same values: they are small integers or exact in fp16.
    ///
    /// # Errors
    /// As [`new`](Self::new).
    pub fn with_precision(graph: &Graph, device: Device, precision: Precision) -> Result<Self> {
        let _guard = tch::no_grad_guard();
        let half = precision == Precision::Fp16;
        // The table has exactly the ops of `OPS` (a test checks it), so every node has a kernel after this; a
        // table that fell behind is still an error naming the node, not a panic.
        sensgrid_model::ops::check_supported(graph)?;
        // The parameters each op's entry keeps float32 (BatchNormalization's, whose running variances pass
        // fp16's range) stay float32 in fp16; so does any constant outside fp16's range.
        let mut fp32_parameters: HashSet<&str> = HashSet::new();
        for node in &graph.nodes {
            let op = sensgrid_model::ops::op_of(node)?;
            fp32_parameters.extend(op.fp32_inputs.iter().filter_map(|&i| node.input(i)));
        }
        let stays_float = |name: &str, host: &Tensor| {
            fp32_parameters.contains(name) || host.numel() > 0 && host.abs().max().double_value(&[]) > FP16_MAX
        };
        let mut constant_index = HashMap::new();
        let mut by_name = HashMap::new();
        let mut constants = Vec::with_capacity(graph.constants.len());
        for (name, data) in &graph.constants {
            let kind = kind_of(data.dtype()).with_context(|| format!("constant '{name}'"))?;
            let dims: Vec<i64> = data.dims().iter().map(|&d| d as i64).collect();
            let host = flush_subnormals(Tensor::f_from_data_size(data.bytes(), &dims, kind)?);
            // Integer constants feed shape arithmetic, which reads values on the host: they stay there.
            let tensor = if ops::is_float(kind) {
                let in_half = half && !stays_float(name, &host);
                lower(host, in_half).to_device(device)
            } else {
                host
            };
            constant_index.insert(name.clone(), constants.len());
            by_name.insert(name.clone(), tensor.shallow_clone());
            constants.push(tensor);
        }

        let table = registry::kernel_table();

        let mut slot_of: HashMap<&str, usize> = HashMap::new();
        let mut inputs = Vec::new();
        for input in &graph.inputs {
            slot_of.insert(&input.name, slot_of.len());
            inputs.push((input.name.clone(), slot_of.len() - 1));
        }
        let source = |name: &str, slot_of: &HashMap<&str, usize>| -> Result<Source> {
            if name.is_empty() {
                Ok(Source::Absent)
            } else if let Some(&slot) = slot_of.get(name) {
                Ok(Source::Slot(slot))
            } else if let Some(&constant) = constant_index.get(name) {
                Ok(Source::Constant(constant))
            } else {
                bail!("'{name}' is neither a graph input, a constant nor the output of an earlier node")
            }
        };
        let mut steps = Vec::with_capacity(graph.nodes.len());
        for node in &graph.nodes {
            let ctx = BuildCtx {
                node,
                opset: graph.opset,
                constants: &by_name,
            };
            let build = table
                .get(node.op_type.as_str())
                .with_context(|| format!("node '{}' ({}): no kernel runs this op", node.name, node.op_type))?;
            let kernel = build(&ctx)?;
            let step_inputs = node
                .inputs
                .iter()
                .map(|name| source(name, &slot_of))
                .collect::<Result<_>>()
                .with_context(|| format!("node '{}' ({})", node.name, node.op_type))?;
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
                parts: Vec::new(),
            });
        }
        let outputs: Vec<(String, Source)> = graph
            .outputs
            .iter()
            .map(|o| Ok((o.name.clone(), source(&o.name, &slot_of).context("graph output")?)))
            .collect::<Result<_>>()?;
        let mut steps = fusion::fuse(graph, &by_name, steps, &outputs, &constants)?;

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
        let mut last_use: Vec<Option<usize>> = vec![None; slot_of.len()];
        for (&slot, &step) in &last_reader {
            last_use[slot] = Some(step);
        }
        for (_, output) in &outputs {
            if let Source::Slot(slot) = output {
                last_use[*slot] = Some(usize::MAX);
            }
        }
        for (slot, step) in last_reader {
            steps[step].free_after.push(slot);
        }
        Ok(Self {
            device,
            half,
            constants,
            constant_index,
            steps,
            slot_count: slot_of.len(),
            inputs,
            outputs,
            last_use,
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
        let host = flush_subnormals(Tensor::f_from_data_size(data.bytes(), &dims, kind_of(data.dtype())?)?);
        let target = &mut self.constants[index];
        // In fp16, a constant uploaded in fp16 takes float32 data in fp16 (the same rounding as at load, so
        // restoring the original data restores the constant bit for bit).
        let host = lower(host, target.kind() == Kind::Half);
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

    /// The device the graph runs on.
    pub fn device(&self) -> Device {
        self.device
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
        let _guard = tch::no_grad_guard();
        let mut slots = self.input_slots(inputs)?;
        self.run_steps(&mut slots, 0, self.steps.len(), None)?;
        self.take_outputs(&mut slots)
    }

    /// Like [`run`](Self::run), and hands `tap` every tensor a node produces, by name, as it is produced;
    /// what `tap` returns is what later nodes consume. Returning the tensor unchanged observes the run;
    /// returning a reference value instead checks each node on exactly the reference's inputs. It runs every
    /// node on its own, fused steps included, so its outputs may differ from `run`'s by float rounding.
    pub fn run_tapped(&self, inputs: &[Tensor], tap: &mut dyn FnMut(&str, Tensor) -> Tensor) -> Result<Vec<Tensor>> {
        let _guard = tch::no_grad_guard();
        let mut slots = self.input_slots(inputs)?;
        self.run_steps(&mut slots, 0, self.steps.len(), Some(tap))?;
        self.take_outputs(&mut slots)
    }

    /// Makes the named float32 constants trainable and returns them: what
    /// [`run_differentiable`](Self::run_differentiable) computes from them is recorded by libtorch's autograd,
    /// so a loss on its outputs gives them gradients. The returned tensors share the constants' storage: an
    /// optimizer updating them in place (under `no_grad`) changes what every later run reads. Every other run
    /// is under `no_grad`, so inference neither records nor slows down.
    ///
    /// # Errors
    /// An unknown name, a constant that is not float32, or an executor that runs in fp16.
    pub fn trainable(&self, names: &[&str]) -> Result<Vec<Tensor>> {
        if self.half {
            bail!("an fp16 executor cannot be trained: load the model in fp32");
        }
        names
            .iter()
            .map(|&name| {
                let constant = self
                    .constant(name)
                    .with_context(|| format!("the model has no constant '{name}'"))?;
                if constant.kind() != Kind::Float {
                    bail!(
                        "constant '{name}' is {:?}, not float32: it cannot be trained",
                        constant.kind()
                    );
                }
                Ok(constant.set_requires_grad(true))
            })
            .collect()
    }

    /// Runs the graph with autograd recording (unless the caller is under `no_grad`), for training the
    /// constants made [`trainable`](Self::trainable). Fused steps run node by node, as in
    /// [`run_tapped`](Self::run_tapped): their in-place activations and their BatchNormalization folded at
    /// every run are for inference, while the nodes' own kernels write nothing in place. BatchNormalization
    /// stays in inference mode (its running statistics are read, never updated).
    ///
    /// # Errors
    /// As [`run`](Self::run).
    pub fn run_differentiable(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        let mut slots = self.input_slots(inputs)?;
        self.run_steps(&mut slots, 0, self.steps.len(), Some(&mut |_, tensor| tensor))?;
        self.take_outputs(&mut slots)
    }

    /// The number of steps (nodes) a run goes through.
    pub fn step_count(&self) -> usize {
        self.steps.len()
    }

    /// The first step that reads any of the named constants: where a run with those constants changed starts
    /// to differ from one without. `None` when no step reads them.
    pub fn first_reader<'a>(&self, constants: impl IntoIterator<Item = &'a str>) -> Option<usize> {
        let indices: Vec<usize> = constants
            .into_iter()
            .filter_map(|name| self.constant_index.get(name).copied())
            .collect();
        self.steps.iter().position(|step| {
            step.inputs
                .iter()
                .any(|source| matches!(source, Source::Constant(i) if indices.contains(i)))
        })
    }

    /// Runs the steps before `step` on `inputs` and keeps what the rest of the run needs.
    ///
    /// # Errors
    /// As [`run`](Self::run); a step past the end.
    pub fn run_prefix(&self, inputs: &[Tensor], step: usize) -> Result<Boundary> {
        let _guard = tch::no_grad_guard();
        if step > self.steps.len() {
            bail!("step {step}: the model has {} steps", self.steps.len());
        }
        let mut slots = self.input_slots(inputs)?;
        self.run_steps(&mut slots, 0, step, None)?;
        let slots = slots
            .into_iter()
            .enumerate()
            .filter_map(|(slot, tensor)| {
                let needed = self.last_use[slot].is_some_and(|last| last >= step);
                tensor.filter(|_| needed).map(|t| (slot, t))
            })
            .collect();
        Ok(Boundary { step, slots })
    }

    /// Runs the rest of the graph from `boundary` and returns its outputs. The boundary is left as it was
    /// (its tensors are shared, never written), so it serves any number of runs.
    ///
    /// # Errors
    /// As [`run`](Self::run).
    pub fn run_from(&self, boundary: &Boundary) -> Result<Vec<Tensor>> {
        let _guard = tch::no_grad_guard();
        let mut slots: Vec<Option<Tensor>> = (0..self.slot_count).map(|_| None).collect();
        for (slot, tensor) in &boundary.slots {
            slots[*slot] = Some(tensor.shallow_clone());
        }
        self.run_steps(&mut slots, boundary.step, self.steps.len(), None)?;
        self.take_outputs(&mut slots)
    }

    /// Fresh slots holding `inputs` on the device.
    fn input_slots(&self, inputs: &[Tensor]) -> Result<Vec<Option<Tensor>>> {
        if inputs.len() != self.inputs.len() {
            bail!("the model takes {} input(s), got {}", self.inputs.len(), inputs.len());
        }
        let mut slots: Vec<Option<Tensor>> = (0..self.slot_count).map(|_| None).collect();
        for ((_, slot), tensor) in self.inputs.iter().zip(inputs) {
            slots[*slot] = Some(channels_last(lower(tensor.to_device(self.device), self.half)));
        }
        Ok(slots)
    }

    /// Runs steps `from..to` on `slots`, freeing each slot after its last reader. With a tap, fused steps run
    /// node by node and `tap` sees (and may replace) every node's outputs.
    fn run_steps(
        &self,
        slots: &mut [Option<Tensor>],
        from: usize,
        to: usize,
        mut tap: Option<&mut Tap<'_>>,
    ) -> Result<()> {
        for step in &self.steps[from..to] {
            match tap.as_deref_mut() {
                Some(tap) if !step.parts.is_empty() => {
                    for part in &step.parts {
                        self.run_step(part, slots, tap)?;
                    }
                    // The intermediate outputs: only the last part's are the fused step's.
                    for part in &step.parts[..step.parts.len() - 1] {
                        for slot in part.outputs.iter().filter_map(|(_, slot)| *slot) {
                            slots[slot] = None;
                        }
                    }
                }
                Some(tap) => self.run_step(step, slots, tap)?,
                None => self.run_step(step, slots, &mut |_, tensor| tensor)?,
            }
            for slot in &step.free_after {
                slots[*slot] = None;
            }
        }
        Ok(())
    }

    /// Runs one step's kernel on `slots` and stores its outputs, through `tap`.
    fn run_step(
        &self,
        step: &Step,
        slots: &mut [Option<Tensor>],
        tap: &mut dyn FnMut(&str, Tensor) -> Tensor,
    ) -> Result<()> {
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
                slots[*slot] = Some(tap(name, lower(tensor, self.half)));
            }
        }
        Ok(())
    }

    /// An output in float32 where an fp16 run computed it in fp16.
    fn raise(&self, tensor: Tensor) -> Tensor {
        if self.half && tensor.kind() == Kind::Half {
            tensor.to_kind(Kind::Float)
        } else {
            tensor
        }
    }

    /// The graph outputs, taken from the slots of a finished run.
    fn take_outputs(&self, slots: &mut [Option<Tensor>]) -> Result<Vec<Tensor>> {
        self.outputs
            .iter()
            .map(|(name, source)| match source {
                // Contiguous, whatever memory format the run left them in.
                Source::Slot(slot) => slots[*slot]
                    .take()
                    .map(|t| self.raise(t).contiguous())
                    .with_context(|| format!("output '{name}' was not computed")),
                Source::Constant(index) => Ok(self.raise(self.constants[*index].shallow_clone())),
                Source::Absent => bail!("output with an empty name"),
            })
            .collect()
    }
}

/// `tensor` with its subnormal float32 values (below 1.2e-38 in magnitude, not zero) made zero; any other tensor
/// as it is. PP-OCRv3 det's backbone holds 13,895 of them (whole filters decayed to nothing in training), and
/// x86 CPUs take a microcode assist for every multiplication by one: on Intel Sapphire Rapids its two 1x1
/// convolutions with the most took 23 and 16 ms where 0.4 ms is their due. A value that small contributes
/// nothing a float32 sum of normal values can hold, so the outputs are unchanged up to rounding.
fn flush_subnormals(tensor: Tensor) -> Tensor {
    if tensor.kind() != Kind::Float || tensor.numel() == 0 {
        return tensor;
    }
    let subnormal = tensor
        .abs()
        .lt(f64::from(f32::MIN_POSITIVE))
        .logical_and(&tensor.ne(0.0));
    tensor.masked_fill(&subnormal, 0.0)
}

/// The largest finite fp16 value.
const FP16_MAX: f64 = 65504.0;

/// `tensor` in fp16 when `half` and it holds float32 values; as it is otherwise (the fp32 path never copies).
fn lower(tensor: Tensor, half: bool) -> Tensor {
    if half && tensor.kind() == Kind::Float {
        tensor.to_kind(Kind::Half)
    } else {
        tensor
    }
}

/// A 4-D float tensor on the CPU in channels-last memory format (NHWC strides, same NCHW shape and values);
/// any other tensor as it is (issue 16). oneDNN convolves NHWC without reordering its input and output,
/// which made det 640x640 about 10% faster on 2 threads, and libtorch's element-wise ops, pooling, Resize
/// and Concat keep the format, so the whole run stays in it. Kernels see only logical shapes (reshapes copy
/// where the strides need it), and `take_outputs` makes the outputs contiguous again.
fn channels_last(tensor: Tensor) -> Tensor {
    if tensor.device() == Device::Cpu && tensor.dim() == 4 && ops::is_float(tensor.kind()) {
        tensor.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2])
    } else {
        tensor
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use sensgrid_model::ir::{Attr, Node, ValueInfo};

    fn node(op_type: &str, inputs: &[&str], output: &str) -> Node {
        Node {
            name: output.to_owned(),
            op_type: op_type.to_owned(),
            domain: String::new(),
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            outputs: vec![output.to_owned()],
            attributes: Vec::new(),
        }
    }

    /// `y = relu(x + a) * b + (x + a)`: a skip connection across the step that reads `b`, and `a` read
    /// before it.
    pub(crate) fn skip_graph() -> Graph {
        let value = |name: &str| ValueInfo {
            name: name.to_owned(),
            fact: None,
        };
        let constant = |v: &[f32]| TensorData::from_values(vec![v.len()], v).unwrap();
        Graph {
            name: "skip".into(),
            ir_version: 8,
            opset: 17,
            other_opsets: Vec::new(),
            producer_name: String::new(),
            producer_version: String::new(),
            metadata: Vec::new(),
            inputs: vec![value("x")],
            outputs: vec![value("y")],
            constants: [
                ("a".to_owned(), constant(&[1.0, -2.0, 0.5])),
                ("b".to_owned(), constant(&[3.0, 0.25, -1.0])),
            ]
            .into(),
            nodes: vec![
                node("Add", &["x", "a"], "t1"),
                node("Relu", &["t1"], "t2"),
                node("Mul", &["t2", "b"], "t3"),
                node("Add", &["t3", "t1"], "y"),
            ],
            value_info: Default::default(),
        }
    }

    #[test]
    fn attributes_are_refused_with_the_model_crate_s_message() {
        let mut graph = skip_graph();
        graph.nodes[1].attributes.push(("fancy".into(), Attr::Int(1)));
        let Err(refusal) = Executor::new(&graph, Device::Cpu) else {
            panic!("a Relu with an attribute was accepted")
        };
        let check = sensgrid_model::ops::check_supported(&graph).unwrap_err().to_string();
        assert_eq!(refusal.to_string(), check);
        assert_eq!(
            check,
            "node 't2' (Relu), attribute 'fancy': is not supported (supported: none)"
        );
    }

    #[test]
    fn a_name_nothing_defines_is_an_error_naming_the_node_not_a_panic() {
        let mut graph = skip_graph();
        graph.nodes[2].inputs[1] = "nowhere".into();
        let Err(refusal) = Executor::new(&graph, Device::Cpu) else {
            panic!("a node reading an undefined name was accepted")
        };
        assert_eq!(
            format!("{refusal:#}"),
            "node 't3' (Mul): 'nowhere' is neither a graph input, a constant nor the output of an earlier node"
        );
        let mut graph = skip_graph();
        graph.outputs[0].name = "missing".into();
        let Err(refusal) = Executor::new(&graph, Device::Cpu) else {
            panic!("an undefined graph output was accepted")
        };
        assert!(
            format!("{refusal:#}").starts_with("graph output: 'missing'"),
            "{refusal:#}"
        );
    }

    #[test]
    fn the_executor_holds_exactly_the_types_cast_may_target() {
        for dtype in (0..=16).filter_map(DataType::from_onnx) {
            assert_eq!(
                kind_of(dtype).is_ok(),
                sensgrid_model::ops::TENSOR_TYPES.contains(&dtype),
                "{dtype}"
            );
        }
    }

    #[test]
    fn a_run_from_a_boundary_equals_the_full_run_and_leaves_the_boundary_as_it_was() {
        let graph = skip_graph();
        let mut executor = Executor::new(&graph, Device::Cpu).unwrap();
        let x = Tensor::from_slice(&[0.5f32, 1.0, -3.0]);
        let step = executor.first_reader(["b"]).unwrap();
        assert_eq!(step, 2);
        assert_eq!(executor.first_reader(["a"]), Some(0));
        assert_eq!(executor.first_reader(["nope"]), None);

        let boundary = executor.run_prefix(std::slice::from_ref(&x), step).unwrap();
        // x was last read by step 0: only t1 (read again by step 3) and t2 are alive.
        let mut slots: Vec<usize> = boundary.slots.iter().map(|(slot, _)| *slot).collect();
        slots.sort();
        assert_eq!(slots, [1, 2]);
        assert_eq!(boundary.bytes(), 2 * 3 * 4);
        let kept: Vec<Tensor> = boundary.slots.iter().map(|(_, t)| t.copy()).collect();

        let full = executor.run(std::slice::from_ref(&x)).unwrap();
        assert!(executor.run_from(&boundary).unwrap()[0].equal(&full[0]));
        // Changing what the step reads changes the result, not the boundary.
        let b = TensorData::from_values(vec![3], &[0.0f32, 0.0, 0.0]).unwrap();
        executor.set_constant("b", &b).unwrap();
        let changed = executor.run_from(&boundary).unwrap();
        assert!(changed[0].equal(&executor.run(std::slice::from_ref(&x)).unwrap()[0]));
        assert!(!changed[0].equal(&full[0]));
        for ((_, tensor), kept) in boundary.slots.iter().zip(&kept) {
            assert!(tensor.equal(kept), "the boundary was written to");
        }
    }

    /// `y = relu(batchnorm(conv(x, w))) + c`, with a 1x1 convolution: one fused step.
    fn conv_bn_graph() -> Graph {
        let value = |name: &str| ValueInfo {
            name: name.to_owned(),
            fact: None,
        };
        let constant = |dims: Vec<usize>, v: &[f32]| TensorData::from_values(dims, v).unwrap();
        let mut graph = skip_graph();
        graph.inputs = vec![value("x")];
        graph.outputs = vec![value("y")];
        graph.constants = [
            (
                "w".to_owned(),
                constant(vec![3, 2, 1, 1], &[1.0, -2.0, 0.5, 0.25, -1.0, 3.0]),
            ),
            ("scale".to_owned(), constant(vec![3], &[1.5, -0.5, 2.0])),
            ("beta".to_owned(), constant(vec![3], &[0.1, 0.2, -0.3])),
            ("mean".to_owned(), constant(vec![3], &[0.5, -1.0, 0.0])),
            ("var".to_owned(), constant(vec![3], &[2.0, 0.5, 1.0])),
            ("c".to_owned(), constant(vec![1, 3, 1, 1], &[1.0, 2.0, 3.0])),
        ]
        .into();
        graph.nodes = vec![
            node("Conv", &["x", "w"], "t1"),
            node("BatchNormalization", &["t1", "scale", "beta", "mean", "var"], "t2"),
            node("Relu", &["t2"], "t3"),
            node("Add", &["t3", "c"], "y"),
        ];
        graph
    }

    #[test]
    fn a_fused_conv_step_computes_its_nodes_and_reads_all_their_constants() {
        let mut executor = Executor::new(&conv_bn_graph(), Device::Cpu).unwrap();
        assert_eq!(executor.step_count(), 1);
        assert_eq!(executor.steps[0].op_type, "Conv+BatchNormalization+Relu+Add");
        assert_eq!(executor.first_reader(["var"]), Some(0));
        let x = Tensor::randn([1, 2, 4, 4], (Kind::Float, Device::Cpu));
        let fused = executor.run(std::slice::from_ref(&x)).unwrap();
        let mut names = Vec::new();
        let nodes = executor
            .run_tapped(std::slice::from_ref(&x), &mut |name, t| {
                names.push(name.to_owned());
                t
            })
            .unwrap();
        assert_eq!(names, ["t1", "t2", "t3", "y"]);
        assert!(fused[0].allclose(&nodes[0], 1e-5, 1e-6, false));
        assert!(fused[0].is_contiguous());

        // Masking a BatchNormalization parameter in place reaches the folded weight at the next run.
        let boundary = executor.run_prefix(std::slice::from_ref(&x), 0).unwrap();
        let scale = TensorData::from_values(vec![3], &[1.5f32, 0.0, 2.0]).unwrap();
        executor.set_constant("scale", &scale).unwrap();
        let masked = executor.run(std::slice::from_ref(&x)).unwrap();
        assert!(!masked[0].equal(&fused[0]));
        assert!(masked[0].equal(&executor.run_from(&boundary).unwrap()[0]));
        // Channel 1 is now relu(beta) + c everywhere.
        let channel = masked[0].select(1, 1);
        assert!(channel.allclose(&channel.full_like(2.2), 1e-6, 1e-6, false));
    }

    #[test]
    fn a_differentiable_run_gives_the_trainable_constants_gradients_and_inference_records_nothing() {
        let executor = Executor::new(&conv_bn_graph(), Device::Cpu).unwrap();
        let x = Tensor::randn([2, 2, 4, 4], (Kind::Float, Device::Cpu));
        let fused = executor.run(std::slice::from_ref(&x)).unwrap();
        let trained = executor.trainable(&["w", "scale"]).unwrap();
        let recorded = executor.run_differentiable(std::slice::from_ref(&x)).unwrap();
        assert!(recorded[0].allclose(&fused[0], 1e-5, 1e-6, false));
        recorded[0].square().sum(Kind::Float).backward();
        for (name, tensor) in ["w", "scale"].iter().zip(&trained) {
            let grad = tensor.grad();
            assert!(
                grad.defined() && grad.abs().sum(Kind::Float).double_value(&[]) > 0.0,
                "{name}"
            );
        }
        // The running statistics stay constants; inference builds no graph.
        assert!(!executor.constant("var").unwrap().requires_grad());
        assert!(!executor.run(std::slice::from_ref(&x)).unwrap()[0].requires_grad());
        let half = Executor::with_precision(&conv_bn_graph(), Device::Cpu, Precision::Fp16).unwrap();
        assert!(half.trainable(&["w"]).is_err());
    }

    #[test]
    fn subnormal_weights_are_zero_on_the_device_at_load_and_after_a_mask() {
        let subnormal = f32::MIN_POSITIVE / 4.0;
        let mut graph = skip_graph();
        graph.constants.insert(
            "a".to_owned(),
            TensorData::from_values(vec![3], &[subnormal, -subnormal, 0.5]).unwrap(),
        );
        let mut executor = Executor::new(&graph, Device::Cpu).unwrap();
        let values = |executor: &Executor, name: &str| Vec::<f32>::try_from(executor.constant(name).unwrap()).unwrap();
        assert_eq!(values(&executor, "a"), [0.0, 0.0, 0.5]);
        let b = TensorData::from_values(vec![3], &[1.0f32, subnormal, -f32::MIN_POSITIVE]).unwrap();
        executor.set_constant("b", &b).unwrap();
        assert_eq!(
            values(&executor, "b"),
            [1.0, 0.0, -f32::MIN_POSITIVE],
            "the smallest normal value stays"
        );
    }

    #[test]
    fn in_fp16_weights_are_half_norm_parameters_float_and_outputs_float() {
        let graph = conv_bn_graph();
        let executor = Executor::with_precision(&graph, Device::Cpu, Precision::Fp16).unwrap();
        assert_eq!(executor.constant("w").unwrap().kind(), Kind::Half);
        assert_eq!(executor.constant("c").unwrap().kind(), Kind::Half);
        assert_eq!(executor.constant("var").unwrap().kind(), Kind::Float);
        let x = Tensor::randn([1, 2, 4, 4], (Kind::Float, Device::Cpu));
        let half = &executor.run(std::slice::from_ref(&x)).unwrap()[0];
        let full = &Executor::new(&graph, Device::Cpu)
            .unwrap()
            .run(std::slice::from_ref(&x))
            .unwrap()[0];
        assert_eq!(half.kind(), Kind::Float);
        assert!(half.allclose(full, 1e-2, 1e-2, false));
    }
}
