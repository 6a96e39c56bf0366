//! The few ONNX protobuf messages an exported model needs, written by hand: a protobuf
//! message is a list of `(field number, wire type)` keys followed by varints or
//! length-prefixed bytes, and the export writes only those two wire types. Field numbers
//! are those of `onnx.proto` (IR version 10); a generated encoder (prost and a build step)
//! would buy nothing for writing a handful of messages.

/// Protobuf wire type of varint fields (integers, enums, booleans).
const VARINT: u32 = 0;
/// Protobuf wire type of length-delimited fields (bytes, strings, messages, packed lists).
const BYTES: u32 = 2;

/// One message being written: its fields, in the order they are added.
#[derive(Clone, Debug, Default)]
pub struct Message(Vec<u8>);

impl Message {
    /// An empty message.
    pub fn new() -> Message {
        Message(Vec::new())
    }

    /// The encoded bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }

    fn key(&mut self, field: u32, wire: u32) {
        varint(&mut self.0, u64::from(field << 3 | wire));
    }

    /// An integer field (int32 / int64 / enum; negative values as 10-byte varints, as
    /// protobuf encodes them).
    pub fn int(mut self, field: u32, value: i64) -> Message {
        self.key(field, VARINT);
        varint(&mut self.0, value as u64);
        self
    }

    /// A bytes or string field.
    pub fn bytes(mut self, field: u32, value: &[u8]) -> Message {
        self.key(field, BYTES);
        varint(&mut self.0, value.len() as u64);
        self.0.extend_from_slice(value);
        self
    }

    /// A string field.
    pub fn string(self, field: u32, value: &str) -> Message {
        self.bytes(field, value.as_bytes())
    }

    /// An embedded message field.
    pub fn message(self, field: u32, value: Message) -> Message {
        self.bytes(field, &value.0)
    }

    /// A repeated integer field, packed.
    pub fn packed_ints(mut self, field: u32, values: &[i64]) -> Message {
        let mut body = Vec::new();
        for &v in values {
            varint(&mut body, v as u64);
        }
        self.key(field, BYTES);
        varint(&mut self.0, body.len() as u64);
        self.0.extend_from_slice(&body);
        self
    }
}

fn varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// `TensorProto.DataType` values used here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataType {
    /// uint8.
    Uint8 = 2,
    /// int64.
    Int64 = 7,
    /// string.
    String = 8,
    /// bool.
    Bool = 9,
    /// double.
    Double = 11,
}

/// A constant tensor's values.
#[derive(Clone, Debug, PartialEq)]
pub enum Values {
    /// double values.
    Double(Vec<f64>),
    /// int64 values.
    Int64(Vec<i64>),
    /// uint8 values.
    Uint8(Vec<u8>),
    /// bool values.
    Bool(Vec<bool>),
    /// string values.
    String(Vec<String>),
}

impl Values {
    /// Number of values.
    pub fn len(&self) -> usize {
        match self {
            Values::Double(v) => v.len(),
            Values::Int64(v) => v.len(),
            Values::Uint8(v) => v.len(),
            Values::Bool(v) => v.len(),
            Values::String(v) => v.len(),
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A `TensorProto`: `dims` (empty for a scalar) and the values, little-endian in
/// `raw_data` (strings in `string_data`).
pub fn tensor(name: &str, dims: &[i64], values: &Values) -> Message {
    let mut m = Message::new().packed_ints(1, dims);
    let (data_type, raw): (DataType, Vec<u8>) = match values {
        Values::Double(v) => (
            DataType::Double,
            v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        ),
        Values::Int64(v) => (
            DataType::Int64,
            v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        ),
        Values::Uint8(v) => (DataType::Uint8, v.clone()),
        Values::Bool(v) => (DataType::Bool, v.iter().map(|&b| u8::from(b)).collect()),
        Values::String(v) => {
            m = m.int(2, DataType::String as i64);
            for s in v {
                m = m.string(6, s);
            }
            return if name.is_empty() {
                m
            } else {
                m.string(8, name)
            };
        }
    };
    m = m.int(2, data_type as i64);
    if !name.is_empty() {
        m = m.string(8, name);
    }
    m.bytes(9, &raw)
}

/// An attribute value of a `NodeProto`.
#[derive(Clone, Debug)]
pub enum Attr {
    /// INT.
    Int(i64),
    /// INTS.
    Ints(Vec<i64>),
    /// STRING.
    String(String),
    /// STRINGS.
    Strings(Vec<String>),
    /// TENSOR.
    Tensor(Message),
    /// GRAPH.
    Graph(Message),
}

/// An `AttributeProto` named `name`.
pub fn attribute(name: &str, value: &Attr) -> Message {
    // AttributeProto: name 1, i 3, s 4, t 5, g 6, ints 8, strings 9, type 20.
    let m = Message::new().string(1, name);
    match value {
        Attr::Int(i) => m.int(3, *i).int(20, 2),
        Attr::String(s) => m.string(4, s).int(20, 3),
        Attr::Tensor(t) => m.message(5, t.clone()).int(20, 4),
        Attr::Graph(g) => m.message(6, g.clone()).int(20, 5),
        Attr::Ints(v) => m.packed_ints(8, v).int(20, 7),
        Attr::Strings(v) => {
            let mut m = m;
            for s in v {
                m = m.string(9, s);
            }
            m.int(20, 8)
        }
    }
}

/// A `NodeProto`.
pub fn node(
    op_type: &str,
    domain: &str,
    inputs: &[&str],
    outputs: &[&str],
    attributes: &[(&str, Attr)],
) -> Message {
    // NodeProto: input 1, output 2, name 3, op_type 4, attribute 5, domain 7.
    let mut m = Message::new();
    for i in inputs {
        m = m.string(1, i);
    }
    for o in outputs {
        m = m.string(2, o);
    }
    m = m.string(3, outputs.first().copied().unwrap_or(op_type));
    m = m.string(4, op_type);
    for (name, value) in attributes {
        m = m.message(5, attribute(name, value));
    }
    if !domain.is_empty() {
        m = m.string(7, domain);
    }
    m
}

/// A `ValueInfoProto` of a tensor with element type `elem` and, when `shape` is given, its
/// dimensions (`None` for the batch dimension, named `N`); without `shape` the rank is
/// left open.
pub fn value_info(name: &str, elem: DataType, shape: Option<&[Option<i64>]>) -> Message {
    // TypeProto.Tensor: elem_type 1, shape 2; TensorShapeProto: dim 1; Dimension: dim_value 1,
    // dim_param 2; TypeProto: tensor_type 1; ValueInfoProto: name 1, type 2.
    let mut tensor_type = Message::new().int(1, elem as i64);
    if let Some(dims) = shape {
        let mut shape = Message::new();
        for d in dims {
            let dim = match d {
                Some(v) => Message::new().int(1, *v),
                None => Message::new().string(2, "N"),
            };
            shape = shape.message(1, dim);
        }
        tensor_type = tensor_type.message(2, shape);
    }
    let type_proto = Message::new().message(1, tensor_type);
    Message::new().string(1, name).message(2, type_proto)
}

/// A `GraphProto`.
pub fn graph(
    name: &str,
    nodes: Vec<Message>,
    initializers: Vec<Message>,
    inputs: Vec<Message>,
    outputs: Vec<Message>,
) -> Message {
    // GraphProto: node 1, name 2, initializer 5, input 11, output 12.
    let mut m = Message::new();
    for n in nodes {
        m = m.message(1, n);
    }
    m = m.string(2, name);
    for t in initializers {
        m = m.message(5, t);
    }
    for i in inputs {
        m = m.message(11, i);
    }
    for o in outputs {
        m = m.message(12, o);
    }
    m
}

/// A `ModelProto` of IR version 10 importing `opsets` (domain, version), with metadata
/// properties.
pub fn model(
    graph: Message,
    opsets: &[(&str, i64)],
    producer_version: &str,
    doc: &str,
    metadata: &[(String, String)],
) -> Message {
    // ModelProto: ir_version 1, producer_name 2, producer_version 3, doc_string 6, graph 7,
    // opset_import 8, metadata_props 14. OperatorSetIdProto: domain 1, version 2.
    // StringStringEntryProto: key 1, value 2.
    let mut m = Message::new()
        .int(1, 10)
        .string(2, "netsec")
        .string(3, producer_version)
        .string(6, doc)
        .message(7, graph);
    for (domain, version) in opsets {
        m = m.message(8, Message::new().string(1, domain).int(2, *version));
    }
    for (key, value) in metadata {
        m = m.message(14, Message::new().string(1, key).string(2, value));
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_keys_are_protobufs() {
        // Field 1 = 150 is the protobuf documentation's example: 08 96 01.
        assert_eq!(Message::new().int(1, 150).into_bytes(), [0x08, 0x96, 0x01]);
        // A negative int64 takes ten bytes.
        assert_eq!(Message::new().int(3, -1).into_bytes().len(), 11);
        assert_eq!(
            Message::new().string(2, "ab").into_bytes(),
            [0x12, 2, b'a', b'b']
        );
        assert_eq!(
            Message::new().packed_ints(1, &[3, 270]).into_bytes(),
            [0x0a, 3, 3, 0x8e, 0x02]
        );
    }

    #[test]
    fn tensors_carry_little_endian_raw_data() {
        let t = tensor("w", &[2], &Values::Double(vec![1.0, -2.5])).into_bytes();
        // dims, data_type = 11, name, raw_data of 16 bytes
        assert_eq!(&t[..3], [0x0a, 1, 2]);
        assert_eq!(&t[3..5], [0x10, 11]);
        assert_eq!(&t[5..8], [0x42, 1, b'w']);
        assert_eq!(&t[8..10], [0x4a, 16]);
        assert_eq!(&t[10..18], 1.0f64.to_le_bytes());
    }
}
