//! Tensor data held by the IR (weights and folded constants) and what is known of a tensor's type and shape.

use std::fmt;

/// Element types of ONNX tensors, with the numbers ONNX's `TensorProto.DataType` gives them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DataType {
    Float,
    Uint8,
    Int8,
    Uint16,
    Int16,
    Int32,
    Int64,
    Bool,
    Float16,
    Double,
    Uint32,
    Uint64,
    Bfloat16,
}

impl DataType {
    /// The type ONNX numbers `code`; None for strings, complex numbers and unknown codes.
    pub fn from_onnx(code: i32) -> Option<Self> {
        Some(match code {
            1 => Self::Float,
            2 => Self::Uint8,
            3 => Self::Int8,
            4 => Self::Uint16,
            5 => Self::Int16,
            6 => Self::Int32,
            7 => Self::Int64,
            9 => Self::Bool,
            10 => Self::Float16,
            11 => Self::Double,
            12 => Self::Uint32,
            13 => Self::Uint64,
            16 => Self::Bfloat16,
            _ => return None,
        })
    }

    /// ONNX's number for this type.
    pub fn onnx_code(self) -> i32 {
        match self {
            Self::Float => 1,
            Self::Uint8 => 2,
            Self::Int8 => 3,
            Self::Uint16 => 4,
            Self::Int16 => 5,
            Self::Int32 => 6,
            Self::Int64 => 7,
            Self::Bool => 9,
            Self::Float16 => 10,
            Self::Double => 11,
            Self::Uint32 => 12,
            Self::Uint64 => 13,
            Self::Bfloat16 => 16,
        }
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Self::Uint8 | Self::Int8 | Self::Bool => 1,
            Self::Uint16 | Self::Int16 | Self::Float16 | Self::Bfloat16 => 2,
            Self::Float | Self::Int32 | Self::Uint32 => 4,
            Self::Int64 | Self::Double | Self::Uint64 => 8,
        }
    }

    /// ONNX's lower-case name ("float", "int64").
    pub fn name(self) -> &'static str {
        match self {
            Self::Float => "float",
            Self::Uint8 => "uint8",
            Self::Int8 => "int8",
            Self::Uint16 => "uint16",
            Self::Int16 => "int16",
            Self::Int32 => "int32",
            Self::Int64 => "int64",
            Self::Bool => "bool",
            Self::Float16 => "float16",
            Self::Double => "double",
            Self::Uint32 => "uint32",
            Self::Uint64 => "uint64",
            Self::Bfloat16 => "bfloat16",
        }
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A dense tensor's values, little-endian, row-major, as ONNX's `raw_data` stores them.
#[derive(Clone, PartialEq)]
pub struct TensorData {
    dtype: DataType,
    dims: Vec<usize>,
    bytes: Vec<u8>,
}

impl fmt::Debug for TensorData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TensorData({} {:?})", self.dtype, self.dims)
    }
}

/// The element types a [`TensorData`] can be read as or built from.
pub trait Element: Copy {
    /// The ONNX type of this element.
    const DTYPE: DataType;
    /// Reads one element from its little-endian bytes.
    fn from_le(bytes: &[u8]) -> Self;
    /// Appends the little-endian bytes of one element.
    fn push_le(self, out: &mut Vec<u8>);
}

macro_rules! element {
    ($t:ty, $dtype:ident) => {
        impl Element for $t {
            const DTYPE: DataType = DataType::$dtype;
            fn from_le(bytes: &[u8]) -> Self {
                <$t>::from_le_bytes(bytes.try_into().expect("element width"))
            }
            fn push_le(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
        }
    };
}
element!(f32, Float);
element!(f64, Double);
element!(i32, Int32);
element!(i64, Int64);
element!(u8, Uint8);

impl TensorData {
    /// A tensor from raw little-endian bytes; None when their length does not match the shape.
    pub fn from_bytes(dtype: DataType, dims: Vec<usize>, bytes: Vec<u8>) -> Option<Self> {
        // Checked: a hostile shape's product must not wrap around to the length of the data it came with.
        let len = dims.iter().try_fold(dtype.size(), |len, &d| len.checked_mul(d))?;
        (len == bytes.len()).then_some(Self { dtype, dims, bytes })
    }

    /// A tensor from typed values; None when their count does not match the shape.
    pub fn from_values<T: Element>(dims: Vec<usize>, values: &[T]) -> Option<Self> {
        let mut bytes = Vec::with_capacity(values.len() * T::DTYPE.size());
        values.iter().for_each(|v| v.push_le(&mut bytes));
        Self::from_bytes(T::DTYPE, dims, bytes)
    }

    /// The element type.
    pub fn dtype(&self) -> DataType {
        self.dtype
    }

    /// The shape; empty for a scalar.
    pub fn dims(&self) -> &[usize] {
        &self.dims
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.dims.iter().product()
    }

    /// Whether the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The raw little-endian bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The values as `T`; None when the element type is not `T`.
    pub fn values<T: Element>(&self) -> Option<Vec<T>> {
        (self.dtype == T::DTYPE).then(|| self.bytes.chunks_exact(T::DTYPE.size()).map(T::from_le).collect())
    }

    /// Integer values widened to i64 (int32, int64, uint8, int8, bool); None for other types.
    pub fn to_i64s(&self) -> Option<Vec<i64>> {
        match self.dtype {
            DataType::Int64 => self.values::<i64>(),
            DataType::Int32 => self.values::<i32>().map(|v| v.into_iter().map(i64::from).collect()),
            DataType::Uint8 | DataType::Bool => Some(self.bytes.iter().map(|&b| i64::from(b)).collect()),
            DataType::Int8 => Some(self.bytes.iter().map(|&b| i64::from(b as i8)).collect()),
            _ => None,
        }
    }

    /// Bytes per element, elements before `axis` (outer) and bytes of one index along `axis` (inner).
    fn axis_layout(&self, axis: usize) -> (usize, usize) {
        let outer = self.dims[..axis].iter().product();
        let inner = self.dims[axis + 1..].iter().product::<usize>() * self.dtype.size();
        (outer, inner)
    }

    /// The tensor made of the given indices along `axis`, in that order.
    ///
    /// # Panics
    /// When `axis` or an index is out of range.
    pub fn select_along(&self, axis: usize, indices: &[usize]) -> Self {
        let (outer, inner) = self.axis_layout(axis);
        let len = self.dims[axis];
        let mut bytes = Vec::with_capacity(outer * indices.len() * inner);
        for o in 0..outer {
            for &k in indices {
                assert!(k < len, "index {k} out of range {len}");
                let at = (o * len + k) * inner;
                bytes.extend_from_slice(&self.bytes[at..at + inner]);
            }
        }
        let mut dims = self.dims.clone();
        dims[axis] = indices.len();
        Self {
            dtype: self.dtype,
            dims,
            bytes,
        }
    }

    /// Sets every element at the given indices along `axis` to zero (all bits clear: +0.0 for floats).
    ///
    /// # Panics
    /// When `axis` or an index is out of range.
    pub fn zero_along(&mut self, axis: usize, indices: &[usize]) {
        let (outer, inner) = self.axis_layout(axis);
        let len = self.dims[axis];
        for o in 0..outer {
            for &k in indices {
                assert!(k < len, "index {k} out of range {len}");
                let at = (o * len + k) * inner;
                self.bytes[at..at + inner].fill(0);
            }
        }
    }

    /// The same values under another shape of the same element count.
    pub fn reshaped(&self, dims: Vec<usize>) -> Option<Self> {
        Self::from_bytes(self.dtype, dims, self.bytes.clone())
    }
}

/// One dimension of a tensor's shape as far as the model declares it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Dim {
    /// A fixed size.
    Known(usize),
    /// A named dynamic size ("batch", "p2o.DynamicDimension.0").
    Symbolic(String),
    /// Dynamic and unnamed (ONNX `?` or -1).
    Unknown,
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Dim::Known(size) => write!(f, "{size}"),
            Dim::Symbolic(name) => f.write_str(name),
            Dim::Unknown => f.write_str("?"),
        }
    }
}

/// What is known of a tensor: its element type and, when declared, its shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorFact {
    pub dtype: DataType,
    /// None when the rank itself is unknown.
    pub shape: Option<Vec<Dim>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_and_check_their_type() {
        let t = TensorData::from_values(vec![2, 2], &[1.5f32, -2.0, 0.0, 7.25]).unwrap();
        assert_eq!(t.values::<f32>().unwrap(), [1.5, -2.0, 0.0, 7.25]);
        assert_eq!(t.values::<i64>(), None);
        assert_eq!(t.len(), 4);
        assert!(TensorData::from_values(vec![3], &[1i64, 2]).is_none());
        let ints = TensorData::from_values(vec![2], &[-3i32, 4]).unwrap();
        assert_eq!(ints.to_i64s().unwrap(), [-3, 4]);
    }
}
