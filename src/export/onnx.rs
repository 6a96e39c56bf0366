//! A netsec model file as one ONNX graph that onnxruntime answers like `netsec predict`.
//!
//! * **Inputs**: one per feature column of the schema, shape `[N]`, typed as a CSV reader
//!   gives them: `int64` for an integer column, `bool` for a boolean one, `double` for a
//!   float column and for any nullable numeric column (NaN = missing), `string` for a
//!   categorical column.
//! * **Encoding** inside the graph, as [`FeatureEncoding::encode`] does it: numbers cast to
//!   double; each category through a `LabelEncoder` whose default is the `<other>` slot
//!   (unseen values and empty cells), then one-hot (`index == 0..=k`; an `OneHotEncoder`
//!   alone would turn unseen values into all zeros). A model fitted on median-filled rows fills NaN with the
//!   same medians.
//! * **Models** in double precision throughout: trees as one `ai.onnx.ml` `TreeEnsemble`
//!   (opset 5; the older `TreeEnsembleRegressor` answers float32 in onnxruntime, and float32
//!   thresholds flip splits), with each split's learned side for missing values; K-class
//!   leaves become K single-target copies of the tree (a v5 leaf feeds one target). Linear
//!   models and the SVM use standard operators (the `ai.onnx.ml` linear and SVM operators
//!   are float-only). The one-vs-one SVM couples its pairwise probabilities by libsvm's
//!   iteration in a `Loop`, row by row with libsvm's stopping rule.
//! * **Outputs**, all `[N]` (MLflow's ONNX loader flattens every output, so an `[N, K]`
//!   tensor would not survive it): `predicted_label` (string: the schema's label value of a
//!   binary model, the class name of a multi-class one), `attack_probability` (double; NaN
//!   on every row when no class is normal) and `p_<class>` per class in class-id order.

use crate::data::dataset::EncodedColumn;
use crate::data::schema::ColumnType;
use crate::model_file::ModelFile;
use crate::models::svm::{FittedKernel, Form, OvoKernel};
use crate::models::tree::{ExportNode, Tree};
use crate::models::{FittedModel, svm};

use super::proto::{self, Attr, DataType, Message, Values};

/// Opset of the default domain.
const OPSET: i64 = 21;
/// Opset of `ai.onnx.ml` (`TreeEnsemble` appeared in 5).
const ML_OPSET: i64 = 5;
const ML: &str = "ai.onnx.ml";

/// Why a model cannot be exported.
#[derive(Debug, thiserror::Error)]
#[error("{algorithm}: {message}")]
pub struct Unsupported {
    /// The algorithm.
    pub algorithm: String,
    /// What cannot be expressed.
    pub message: String,
}

/// The ONNX model of `file` (whose bytes hash to `sha256`), serialized.
pub fn to_onnx(file: &ModelFile, sha256: &str) -> Result<Vec<u8>, Unsupported> {
    let unsupported = |message: &str| Unsupported {
        algorithm: file.algorithm.clone(),
        message: message.to_owned(),
    };
    let mut g = Graph::default();
    let mut inputs = Vec::new();
    let mut features = Vec::new();
    for column in &file.encoding.columns {
        let (name, categories) = match column {
            EncodedColumn::Numeric { name } => (name, None),
            EncodedColumn::OneHot { name, categories } => (name, Some(categories)),
        };
        let spec = file
            .schema
            .column(name)
            .ok_or_else(|| unsupported(&format!("encoded column `{name}` is not in the schema")))?;
        let elem = input_type(spec.column_type, spec.nullable);
        inputs.push(proto::value_info(name, elem, Some(&[None])));
        features.push(match categories {
            None => {
                let value = match elem {
                    DataType::Double => name.clone(),
                    _ => g.op(
                        "Cast",
                        &[name],
                        &[("to", Attr::Int(DataType::Double as i64))],
                    ),
                };
                g.unsqueeze(&value, 1)
            }
            Some(categories) => g.one_hot(name, categories),
        });
    }
    let refs: Vec<&str> = features.iter().map(String::as_str).collect();
    let mut x = g.op("Concat", &refs, &[("axis", Attr::Int(1))]);
    if let Some(fill) = file.model.missing_fill() {
        let nan = g.op("IsNaN", &[&x], &[]);
        let fill = g.constant(Values::Double(fill.to_vec()), &[fill.len() as i64]);
        x = g.op("Where", &[&nan, &fill, &x], &[]);
    }
    let model = match &file.model {
        FittedModel::Imputed(m) => &m.model,
        other => other,
    };
    let n_features = model.n_features();
    let core = match model {
        FittedModel::DecisionTree(m) => trees(&mut g, &x, std::slice::from_ref(&m.tree), false),
        FittedModel::RandomForest(m) => trees(&mut g, &x, &m.trees, true),
        FittedModel::GradientBoosting(m) => gradient_boosting(&mut g, &x, m),
        FittedModel::Adaboost(m) => adaboost(&mut g, &x, m),
        FittedModel::LogisticRegression(m) => logistic_regression(&mut g, &x, m, n_features),
        FittedModel::Svm(m) => svm_core(&mut g, &x, m),
        FittedModel::Imputed(_) => None,
    }
    .ok_or_else(|| unsupported("the model has no trees or no classes to export"))?;
    let outputs = answers(&mut g, file, core);
    let graph = proto::graph(
        &format!("netsec_{}", file.algorithm),
        g.nodes,
        g.initializers,
        inputs,
        outputs,
    );
    let classes = file.classes();
    let metadata = vec![
        ("name".to_owned(), file.experiment.clone()),
        ("version".to_owned(), file.trial_key.clone()),
        ("algorithm".to_owned(), file.algorithm.clone()),
        ("sha256".to_owned(), sha256.to_owned()),
        ("schema_hash".to_owned(), file.schema.hash.clone()),
        (
            "classes".to_owned(),
            serde_json::to_string(&classes.names).unwrap_or_default(),
        ),
        (
            "normal_classes".to_owned(),
            serde_json::to_string(&classes.normal).unwrap_or_default(),
        ),
        ("threshold".to_owned(), file.threshold().to_string()),
        ("netsec_version".to_owned(), file.netsec_version.clone()),
    ];
    let doc = format!(
        "netsec {} model {} of experiment {}: one [N] input per schema feature column, \
         outputs predicted_label, attack_probability and p_<class> per class, all [N].",
        file.algorithm, file.trial_key, file.experiment
    );
    Ok(proto::model(
        graph,
        &[("", OPSET), (ML, ML_OPSET)],
        env!("CARGO_PKG_VERSION"),
        &doc,
        &metadata,
    )
    .into_bytes())
}

/// One named, typed input or output of the graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Port {
    /// The name a caller feeds or reads.
    pub name: String,
    /// Its element type; every input and output has shape `[N]`.
    pub elem: DataType,
}

/// What the graph [`to_onnx`] builds for `file` takes and gives: one input per feature
/// column, then the outputs `predicted_label`, `attack_probability` and `p_<class>` per
/// class. For callers that describe the graph to others (an MLflow signature).
pub fn interface(file: &ModelFile) -> Result<(Vec<Port>, Vec<Port>), Unsupported> {
    let mut inputs = Vec::new();
    for column in &file.encoding.columns {
        let name = match column {
            EncodedColumn::Numeric { name } | EncodedColumn::OneHot { name, .. } => name,
        };
        let spec = file.schema.column(name).ok_or_else(|| Unsupported {
            algorithm: file.algorithm.clone(),
            message: format!("encoded column `{name}` is not in the schema"),
        })?;
        inputs.push(Port {
            name: name.clone(),
            elem: input_type(spec.column_type, spec.nullable),
        });
    }
    let port = |name: &str, elem| Port {
        name: name.to_owned(),
        elem,
    };
    let mut outputs = vec![
        port("predicted_label", DataType::String),
        port("attack_probability", DataType::Double),
    ];
    for name in &file.classes().names {
        outputs.push(port(&class_output(name), DataType::Double));
    }
    Ok((inputs, outputs))
}

/// The output holding P(`class`).
fn class_output(class: &str) -> String {
    format!("p_{class}")
}

/// The input type of a feature column: what a CSV reader gives for it.
fn input_type(column_type: ColumnType, nullable: bool) -> DataType {
    match column_type {
        ColumnType::Categorical => DataType::String,
        // An empty cell makes a CSV reader's integer or boolean column a float one.
        _ if nullable => DataType::Double,
        ColumnType::Integer => DataType::Int64,
        ColumnType::Boolean => DataType::Bool,
        ColumnType::Float => DataType::Double,
    }
}

/// What a model part of the graph answers: P(class 1) of a two-class model (`[N]`), or
/// the K class probabilities (`[N, K]`).
enum Core {
    Binary(String),
    Classes(String),
}

/// Nodes and constants of the graph being built; every value gets a fresh name.
#[derive(Default)]
struct Graph {
    nodes: Vec<Message>,
    initializers: Vec<Message>,
    next: usize,
}

impl Graph {
    fn fresh(&mut self, hint: &str) -> String {
        self.next += 1;
        format!("{hint}_{}", self.next)
    }

    fn constant(&mut self, values: Values, dims: &[i64]) -> String {
        let name = self.fresh("c");
        self.initializers.push(proto::tensor(&name, dims, &values));
        name
    }

    fn scalar(&mut self, v: f64) -> String {
        self.constant(Values::Double(vec![v]), &[])
    }

    fn ints(&mut self, v: &[i64]) -> String {
        self.constant(Values::Int64(v.to_vec()), &[v.len() as i64])
    }

    /// A node of the default domain with one output.
    fn op(&mut self, op: &str, inputs: &[&str], attrs: &[(&str, Attr)]) -> String {
        self.op_in("", op, inputs, attrs)
    }

    fn op_in(&mut self, domain: &str, op: &str, inputs: &[&str], attrs: &[(&str, Attr)]) -> String {
        let out = self.fresh(&op.to_ascii_lowercase());
        self.nodes
            .push(proto::node(op, domain, inputs, &[&out], attrs));
        out
    }

    /// `Identity` under a chosen name (graph outputs).
    fn named(&mut self, input: &str, name: &str) {
        self.nodes
            .push(proto::node("Identity", "", &[input], &[name], &[]));
    }

    fn unsqueeze(&mut self, x: &str, axis: i64) -> String {
        let axes = self.ints(&[axis]);
        self.op("Unsqueeze", &[x, &axes], &[])
    }

    fn squeeze(&mut self, x: &str, axis: i64) -> String {
        let axes = self.ints(&[axis]);
        self.op("Squeeze", &[x, &axes], &[])
    }

    /// `x` split along axis 1 into `n` pieces of width 1.
    fn split_columns(&mut self, x: &str, n: usize) -> Vec<String> {
        let outs: Vec<String> = (0..n).map(|_| self.fresh("col")).collect();
        let refs: Vec<&str> = outs.iter().map(String::as_str).collect();
        self.nodes.push(proto::node(
            "Split",
            "",
            &[x],
            &refs,
            &[("axis", Attr::Int(1)), ("num_outputs", Attr::Int(n as i64))],
        ));
        outs
    }

    /// A `[N]` tensor of `value`, N the rows of `like` (any tensor with N rows).
    fn fill_rows(&mut self, like: &str, value: f64) -> String {
        let shape = self.op("Shape", &[like], &[]);
        let (start, end) = (self.ints(&[0]), self.ints(&[1]));
        let n = self.op("Slice", &[&shape, &start, &end], &[]);
        let value = proto::tensor("", &[1], &Values::Double(vec![value]));
        self.op("ConstantOfShape", &[&n], &[("value", Attr::Tensor(value))])
    }

    /// A categorical column's strings to its one-hot block: the categories in order, then
    /// `<other>` for anything else.
    fn one_hot(&mut self, column: &str, categories: &[String]) -> String {
        let k = categories.len() as i64;
        let index = self.op_in(
            ML,
            "LabelEncoder",
            &[column],
            &[
                ("keys_strings", Attr::Strings(categories.to_vec())),
                ("values_int64s", Attr::Ints((0..k).collect())),
                ("default_int64", Attr::Int(k)),
            ],
        );
        // One-hot as `index == 0..=k`: onnxruntime has no double-valued `OneHot` kernel.
        let index = self.unsqueeze(&index, 1);
        let slots = self.ints(&(0..=k).collect::<Vec<_>>());
        let hot = self.op("Equal", &[&index, &slots], &[]);
        self.op(
            "Cast",
            &[&hot],
            &[("to", Attr::Int(DataType::Double as i64))],
        )
    }
}

/// The attributes of one `TreeEnsemble` being filled tree by tree.
#[derive(Default)]
struct Ensemble {
    roots: Vec<i64>,
    features: Vec<i64>,
    splits: Vec<f64>,
    true_ids: Vec<i64>,
    true_leaf: Vec<i64>,
    false_ids: Vec<i64>,
    false_leaf: Vec<i64>,
    missing_true: Vec<i64>,
    leaf_targets: Vec<i64>,
    leaf_weights: Vec<f64>,
}

impl Ensemble {
    /// Adds `tree`; each leaf adds `weight(leaf)` to target `target`.
    fn add(&mut self, tree: &Tree, target: i64, weight: impl Fn(f64, &[f64]) -> f64) {
        let nodes: Vec<ExportNode<'_>> = tree.export_nodes().collect();
        // netsec node index -> (is leaf, index among the ensemble's nodes or leaves)
        let mut at = Vec::with_capacity(nodes.len());
        let (mut n_split, mut n_leaf) =
            (self.features.len() as i64, self.leaf_targets.len() as i64);
        for node in &nodes {
            match node {
                ExportNode::Split { .. } => {
                    at.push((false, n_split));
                    n_split += 1;
                }
                ExportNode::Leaf { value, classes } => {
                    at.push((true, n_leaf));
                    n_leaf += 1;
                    self.leaf_targets.push(target);
                    self.leaf_weights.push(weight(*value, classes));
                }
            }
        }
        match at.first() {
            Some(&(true, leaf)) => {
                // A tree that is one leaf: a split whose both sides are that leaf.
                self.roots.push(self.features.len() as i64);
                self.push_split(0, 0.0, (true, leaf), (true, leaf), false);
            }
            _ => self.roots.push(self.features.len() as i64),
        }
        for node in &nodes {
            if let ExportNode::Split {
                feature,
                threshold,
                left,
                missing_left,
            } = *node
            {
                self.push_split(feature, threshold, at[left], at[left + 1], missing_left);
            }
        }
    }

    fn push_split(
        &mut self,
        feature: usize,
        threshold: f64,
        left: (bool, i64),
        right: (bool, i64),
        missing_left: bool,
    ) {
        self.features.push(feature as i64);
        self.splits.push(threshold);
        self.true_leaf.push(i64::from(left.0));
        self.true_ids.push(left.1);
        self.false_leaf.push(i64::from(right.0));
        self.false_ids.push(right.1);
        self.missing_true.push(i64::from(missing_left));
    }

    /// The `TreeEnsemble` node summing every tree's leaf into its target: `[N, n_targets]`.
    fn build(self, g: &mut Graph, x: &str, n_targets: usize) -> String {
        let n = self.features.len();
        let vector =
            |values: Values| Attr::Tensor(proto::tensor("", &[values.len() as i64], &values));
        g.op_in(
            ML,
            "TreeEnsemble",
            &[x],
            &[
                ("aggregate_function", Attr::Int(1)),
                ("post_transform", Attr::Int(0)),
                ("n_targets", Attr::Int(n_targets as i64)),
                ("tree_roots", Attr::Ints(self.roots)),
                ("nodes_featureids", Attr::Ints(self.features)),
                // BRANCH_LEQ: `x <= split` takes the true branch, as netsec's left child.
                ("nodes_modes", vector(Values::Uint8(vec![0; n]))),
                ("nodes_splits", vector(Values::Double(self.splits))),
                ("nodes_truenodeids", Attr::Ints(self.true_ids)),
                ("nodes_trueleafs", Attr::Ints(self.true_leaf)),
                ("nodes_falsenodeids", Attr::Ints(self.false_ids)),
                ("nodes_falseleafs", Attr::Ints(self.false_leaf)),
                (
                    "nodes_missing_value_tracks_true",
                    Attr::Ints(self.missing_true),
                ),
                ("leaf_targetids", Attr::Ints(self.leaf_targets)),
                ("leaf_weights", vector(Values::Double(self.leaf_weights))),
            ],
        )
    }
}

/// A decision tree (`average` false, one tree) or a forest: the mean of the trees' P(class
/// 1), or of their class fractions (one copy of each tree per class).
fn trees(g: &mut Graph, x: &str, trees: &[Tree], average: bool) -> Option<Core> {
    let k = trees.first()?.n_classes();
    let mut e = Ensemble::default();
    for t in trees {
        if k == 0 {
            e.add(t, 0, |v, _| v);
        } else {
            for c in 0..k {
                e.add(t, c as i64, |_, classes| classes[c]);
            }
        }
    }
    let mut sum = e.build(g, x, k.max(1));
    if average {
        let n = g.scalar(trees.len() as f64);
        sum = g.op("Div", &[&sum, &n], &[]);
    }
    Some(if k == 0 {
        Core::Binary(g.squeeze(&sum, 1))
    } else {
        Core::Classes(sum)
    })
}

/// Boosted regression trees: sigmoid of init + Σ trees (binary); softmax of the class
/// priors + Σ of each class's trees (tree `t` of a round belongs to class `t mod K`).
fn gradient_boosting(
    g: &mut Graph,
    x: &str,
    m: &crate::models::gradient_boosting::Fitted,
) -> Option<Core> {
    if m.trees.is_empty() {
        return None;
    }
    let k = m.class_init.len();
    let mut e = Ensemble::default();
    for (t, tree) in m.trees.iter().enumerate() {
        let target = if k > 0 { (t % k) as i64 } else { 0 };
        e.add(tree, target, |v, _| v);
    }
    let sum = e.build(g, x, k.max(1));
    if k == 0 {
        let sum = g.squeeze(&sum, 1);
        let init = g.scalar(m.init);
        let raw = g.op("Add", &[&sum, &init], &[]);
        return Some(Core::Binary(g.op("Sigmoid", &[&raw], &[])));
    }
    let init = g.constant(Values::Double(m.class_init.clone()), &[k as i64]);
    let raw = g.op("Add", &[&sum, &init], &[]);
    Some(Core::Classes(g.op(
        "Softmax",
        &[&raw],
        &[("axis", Attr::Int(-1))],
    )))
}

/// AdaBoost SAMME: the alpha-weighted votes of the stumps, as netsec scores them (a
/// sigmoid of the normalized sum for two classes, a softmax of the normalized class votes
/// for K).
fn adaboost(g: &mut Graph, x: &str, m: &crate::models::adaboost::Fitted) -> Option<Core> {
    if m.stumps.is_empty() {
        return None;
    }
    let k = m.n_classes;
    let mut e = Ensemble::default();
    let total: f64 = m.alphas.iter().sum();
    if k <= 2 {
        for (tree, &a) in m.stumps.iter().zip(&m.alphas) {
            e.add(tree, 0, |v, _| a * v);
        }
        let score = e.build(g, x, 1);
        let score = g.squeeze(&score, 1);
        if !(total > 0.0 && total.is_finite()) {
            return Some(Core::Binary(g.fill_rows(&score, 0.5)));
        }
        let total = g.scalar(total);
        let z = g.op("Div", &[&score, &total], &[]);
        return Some(Core::Binary(g.op("Sigmoid", &[&z], &[])));
    }
    let other = -1.0 / (k as f64 - 1.0);
    for (tree, &a) in m.stumps.iter().zip(&m.alphas) {
        let off = other * a;
        for j in 0..k {
            e.add(tree, j as i64, |v, _| if v as usize == j { a } else { off });
        }
    }
    let votes = e.build(g, x, k);
    let norm = g.scalar(total);
    let votes = g.op("Div", &[&votes, &norm], &[]);
    let k1 = g.scalar(k as f64 - 1.0);
    let votes = g.op("Div", &[&votes, &k1], &[]);
    Some(Core::Classes(g.op(
        "Softmax",
        &[&votes],
        &[("axis", Attr::Int(-1))],
    )))
}

/// Logistic regression: sigmoid of the one logit, or softmax of the K logits.
fn logistic_regression(
    g: &mut Graph,
    x: &str,
    m: &crate::models::logistic_regression::Fitted,
    d: usize,
) -> Option<Core> {
    let (coef, intercept) = m.weights();
    if intercept.len() == 1 {
        let w = g.constant(Values::Double(coef.to_vec()), &[d as i64]);
        let z = g.op("MatMul", &[x, &w], &[]);
        let b = g.scalar(intercept[0]);
        let z = g.op("Add", &[&z, &b], &[]);
        return Some(Core::Binary(g.op("Sigmoid", &[&z], &[])));
    }
    let k = intercept.len();
    let w = g.constant(Values::Double(transpose(coef, k, d)), &[d as i64, k as i64]);
    let z = g.op("MatMul", &[x, &w], &[]);
    let b = g.constant(Values::Double(intercept.to_vec()), &[k as i64]);
    let z = g.op("Add", &[&z, &b], &[]);
    Some(Core::Classes(g.op(
        "Softmax",
        &[&z],
        &[("axis", Attr::Int(-1))],
    )))
}

/// `rows × cols` row-major to `cols × rows` row-major.
fn transpose(v: &[f64], rows: usize, cols: usize) -> Vec<f64> {
    let mut out = vec![0.0; v.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = v[r * cols + c];
        }
    }
    out
}

/// `exp(-gamma ‖sv − x‖²)` of every row against every support vector: `[N, S]`. The squared
/// distance is summed feature by feature, in netsec's order, rather than expanded into
/// `‖x‖² + ‖sv‖² − 2 x·sv`, which loses digits on large unscaled values. The sum runs in a
/// `Loop` over the features so that one `[N, S]` term is alive at a time: unrolled, the
/// runtime is free to compute every feature's term before adding any.
fn rbf(g: &mut Graph, x: &str, support_vectors: &[f64], d: usize, gamma: f64) -> String {
    let s = support_vectors.len() / d.max(1);
    let svt = g.constant(
        Values::Double(transpose(support_vectors, s, d)),
        &[d as i64, s as i64],
    );
    let axis1 = g.ints(&[1]);
    let outer = std::mem::take(&mut g.nodes);
    let (f, cond_in, acc_in) = (g.fresh("feature"), g.fresh("cond"), g.fresh("d2"));
    let column = g.op("Gather", &[x, &f], &[("axis", Attr::Int(1))]);
    let column = g.op("Unsqueeze", &[&column, &axis1], &[]);
    let sv = g.op("Gather", &[&svt, &f], &[("axis", Attr::Int(0))]);
    let diff = g.op("Sub", &[&sv, &column], &[]);
    let sq = g.op("Mul", &[&diff, &diff], &[]);
    let acc_out = g.op("Add", &[&acc_in, &sq], &[]);
    let cond_out = g.op("Identity", &[&cond_in], &[]);
    let body_nodes = std::mem::replace(&mut g.nodes, outer);
    let body = proto::graph(
        "squared_distance",
        body_nodes,
        Vec::new(),
        vec![
            proto::value_info(&f, DataType::Int64, Some(&[])),
            proto::value_info(&cond_in, DataType::Bool, Some(&[])),
            proto::value_info(&acc_in, DataType::Double, None),
        ],
        vec![
            proto::value_info(&cond_out, DataType::Bool, Some(&[])),
            proto::value_info(&acc_out, DataType::Double, None),
        ],
    );
    let shape = g.op("Shape", &[x], &[]);
    let (start, end) = (g.ints(&[0]), g.ints(&[1]));
    let n = g.op("Slice", &[&shape, &start, &end], &[]);
    let width = g.ints(&[s as i64]);
    let shape = g.op("Concat", &[&n, &width], &[("axis", Attr::Int(0))]);
    let zero = proto::tensor("", &[1], &Values::Double(vec![0.0]));
    let acc0 = g.op(
        "ConstantOfShape",
        &[&shape],
        &[("value", Attr::Tensor(zero))],
    );
    let trips = g.constant(Values::Int64(vec![d as i64]), &[]);
    let go = g.constant(Values::Bool(vec![true]), &[]);
    let d2 = g.op(
        "Loop",
        &[&trips, &go, &acc0],
        &[("body", Attr::Graph(body))],
    );
    let neg_gamma = g.scalar(-gamma);
    let z = g.op("Mul", &[&d2, &neg_gamma], &[]);
    g.op("Exp", &[&z], &[])
}

/// The SVM: Platt's sigmoid of the decision value (binary), or libsvm's pairwise
/// probabilities coupled into K (one-vs-one).
fn svm_core(g: &mut Graph, x: &str, m: &svm::Fitted) -> Option<Core> {
    let d = m.n_features;
    match &m.form {
        Form::Binary(b) => {
            let f = match &b.kernel {
                FittedKernel::Linear { w } => {
                    let w = g.constant(Values::Double(w.clone()), &[d as i64]);
                    g.op("MatMul", &[x, &w], &[])
                }
                FittedKernel::Rbf {
                    gamma,
                    support_vectors,
                    coef,
                } if !coef.is_empty() => {
                    let kv = rbf(g, x, support_vectors, d, *gamma);
                    let c = g.constant(Values::Double(coef.clone()), &[coef.len() as i64]);
                    g.op("MatMul", &[&kv, &c], &[])
                }
                FittedKernel::Rbf { .. } => g.fill_rows(x, 0.0),
            };
            let rho = g.scalar(b.rho);
            let f = g.op("Sub", &[&f, &rho], &[]);
            let a = g.scalar(b.platt_a);
            let z = g.op("Mul", &[&a, &f], &[]);
            Some(Core::Binary(g.op("Sigmoid", &[&z], &[])))
        }
        Form::OneVsOne(o) => {
            let k = o.n_classes;
            let pairs = o.machines.len();
            let f = match &o.kernel {
                OvoKernel::Linear => {
                    let mut w = vec![0.0; d * pairs];
                    for (p, machine) in o.machines.iter().enumerate() {
                        for (j, c) in machine.coef.iter().enumerate() {
                            w[j * pairs + p] = *c;
                        }
                    }
                    let w = g.constant(Values::Double(w), &[d as i64, pairs as i64]);
                    g.op("MatMul", &[x, &w], &[])
                }
                OvoKernel::Rbf {
                    gamma,
                    support_vectors,
                } => {
                    let s = support_vectors.len() / d.max(1);
                    if s == 0 {
                        return None;
                    }
                    let kv = rbf(g, x, support_vectors, d, *gamma);
                    let mut c = vec![0.0; s * pairs];
                    for (p, machine) in o.machines.iter().enumerate() {
                        for (&sv, coef) in machine.sv.iter().zip(&machine.coef) {
                            c[sv as usize * pairs + p] = *coef;
                        }
                    }
                    let c = g.constant(Values::Double(c), &[s as i64, pairs as i64]);
                    g.op("MatMul", &[&kv, &c], &[])
                }
            };
            let vector = |g: &mut Graph, pick: fn(&svm::PairMachine) -> f64| {
                let v: Vec<f64> = o.machines.iter().map(pick).collect();
                g.constant(Values::Double(v), &[pairs as i64])
            };
            let rho = vector(g, |m| m.rho);
            let f = g.op("Sub", &[&f, &rho], &[]);
            let a = vector(g, |m| m.platt_a);
            let b = vector(g, |m| m.platt_b);
            let z = g.op("Mul", &[&a, &f], &[]);
            let z = g.op("Add", &[&z, &b], &[]);
            let p = g.op("Sigmoid", &[&z], &[]);
            let (lo, hi) = (
                g.scalar(svm::MIN_PAIR_PROB),
                g.scalar(1.0 - svm::MIN_PAIR_PROB),
            );
            let p = g.op("Clip", &[&p, &lo, &hi], &[]);
            Some(Core::Classes(couple(g, &p, k)))
        }
    }
}

/// libsvm's `multiclass_probability` on every row: `p` holds P(j | i or j) per pair
/// `(i, j)` in libsvm's order (`[N, K(K−1)/2]`); the answer is `[N, K]`. The iteration runs in
/// a `Loop` of at most max(100, K) sweeps; a row whose stopping rule holds keeps its
/// probabilities while the others go on, so each row stops where libsvm stops it.
fn couple(g: &mut Graph, p: &str, k: usize) -> String {
    let kk = (k * k) as i64;
    let pairs = k * (k - 1) / 2;
    // r[i·K + j] = P(i | i or j): the pair's P(j) goes to r[j·K + i], 1 − P(j) to r[i·K + j].
    let (mut to_j, mut to_i) = (vec![0.0; pairs * k * k], vec![0.0; pairs * k * k]);
    let mut m = 0;
    for i in 0..k {
        for j in i + 1..k {
            to_j[m * k * k + j * k + i] = 1.0;
            to_i[m * k * k + i * k + j] = 1.0;
            m += 1;
        }
    }
    let to_j = g.constant(Values::Double(to_j), &[pairs as i64, kk]);
    let to_i = g.constant(Values::Double(to_i), &[pairs as i64, kk]);
    let one = g.scalar(1.0);
    let q = g.op("Sub", &[&one, p], &[]);
    let r_j = g.op("MatMul", &[p, &to_j], &[]);
    let r_i = g.op("MatMul", &[&q, &to_i], &[]);
    let r = g.op("Add", &[&r_j, &r_i], &[]);
    let shape = g.ints(&[-1, k as i64, k as i64]);
    let r = g.op("Reshape", &[&r, &shape], &[]);
    // Q[t][t] = Σ_j r_jt², Q[t][j] = −r_jt r_tj.
    let rr = g.op("Mul", &[&r, &r], &[]);
    let axis1 = g.ints(&[1]);
    let diag = g.op("ReduceSum", &[&rr, &axis1], &[("keepdims", Attr::Int(0))]);
    let rt = g.op("Transpose", &[&r], &[("perm", Attr::Ints(vec![0, 2, 1]))]);
    let off = g.op("Mul", &[&rt, &r], &[]);
    let off = g.op("Neg", &[&off], &[]);
    let mut eye = vec![0.0; k * k];
    for t in 0..k {
        eye[t * k + t] = 1.0;
    }
    let eye = g.constant(Values::Double(eye), &[k as i64, k as i64]);
    let diag3 = g.unsqueeze(&diag, 2);
    let diag_m = g.op("Mul", &[&diag3, &eye], &[]);
    let qm = g.op("Add", &[&off, &diag_m], &[]);
    // Loop-invariant pieces, per class t: Q's row t ([N, K]) and Q[t][t] ([N, 1]).
    let mut rows = Vec::with_capacity(k);
    let mut diags = Vec::with_capacity(k);
    let mut units = Vec::with_capacity(k);
    for t in 0..k {
        let idx = g.constant(Values::Int64(vec![t as i64]), &[]);
        let row = g.op("Gather", &[&qm, &idx], &[("axis", Attr::Int(1))]);
        rows.push(row);
        let idx1 = g.ints(&[t as i64]);
        diags.push(g.op("Gather", &[&diag, &idx1], &[("axis", Attr::Int(1))]));
        let mut unit = vec![0.0; k];
        unit[t] = 1.0;
        units.push(g.constant(Values::Double(unit), &[k as i64]));
    }
    let eps = g.scalar(0.005 / k as f64);
    let two = g.scalar(2.0);
    let zero = g.constant(Values::Int64(vec![0]), &[]);
    let axis2 = g.ints(&[2]);

    // The body: its nodes are built on `g` and moved out; its constants stay outer ones.
    let outer = std::mem::take(&mut g.nodes);
    let (iter_in, cond_in, p_in) = (g.fresh("iter"), g.fresh("cond"), g.fresh("p"));
    let p3 = g.unsqueeze(&p_in, 2);
    let qp3 = g.op("MatMul", &[&qm, &p3], &[]);
    let qp0 = g.op("Squeeze", &[&qp3, &axis2], &[]);
    let pqp_terms = g.op("Mul", &[&p_in, &qp0], &[]);
    let pqp0 = g.op(
        "ReduceSum",
        &[&pqp_terms, &axis1],
        &[("keepdims", Attr::Int(1))],
    );
    let gap = g.op("Sub", &[&qp0, &pqp0], &[]);
    let gap = g.op("Abs", &[&gap], &[]);
    let err = g.op("ReduceMax", &[&gap, &axis1], &[("keepdims", Attr::Int(1))]);
    let done = g.op("Less", &[&err, &eps], &[]);
    let (mut pv, mut qp, mut pqp) = (p_in.clone(), qp0, pqp0);
    for t in 0..k {
        let idx = g.ints(&[t as i64]);
        let qp_t = g.op("Gather", &[&qp, &idx], &[("axis", Attr::Int(1))]);
        let num = g.op("Sub", &[&pqp, &qp_t], &[]);
        let diff = g.op("Div", &[&num, &diags[t]], &[]);
        let step = g.op("Mul", &[&diff, &units[t]], &[]);
        pv = g.op("Add", &[&pv, &step], &[]);
        let scale = g.op("Add", &[&one, &diff], &[]);
        // pQp = (pQp + diff (diff Q_tt + 2 Qp_t)) / (1 + diff) / (1 + diff)
        let a = g.op("Mul", &[&diff, &diags[t]], &[]);
        let b = g.op("Mul", &[&two, &qp_t], &[]);
        let inner = g.op("Add", &[&a, &b], &[]);
        let inner = g.op("Mul", &[&diff, &inner], &[]);
        let sum = g.op("Add", &[&pqp, &inner], &[]);
        let once = g.op("Div", &[&sum, &scale], &[]);
        pqp = g.op("Div", &[&once, &scale], &[]);
        // Qp_j = (Qp_j + diff Q_tj) / (1 + diff); p_j /= 1 + diff
        let moved = g.op("Mul", &[&diff, &rows[t]], &[]);
        let moved = g.op("Add", &[&qp, &moved], &[]);
        qp = g.op("Div", &[&moved, &scale], &[]);
        pv = g.op("Div", &[&pv, &scale], &[]);
    }
    let p_out = g.op("Where", &[&done, &p_in, &pv], &[]);
    let open = g.op("Not", &[&done], &[]);
    let open = g.op(
        "Cast",
        &[&open],
        &[("to", Attr::Int(DataType::Int64 as i64))],
    );
    let open = g.op("ReduceSum", &[&open], &[("keepdims", Attr::Int(0))]);
    let cond_out = g.op("Greater", &[&open, &zero], &[]);
    let body_nodes = std::mem::replace(&mut g.nodes, outer);
    let body = proto::graph(
        "couple",
        body_nodes,
        Vec::new(),
        vec![
            proto::value_info(&iter_in, DataType::Int64, Some(&[])),
            proto::value_info(&cond_in, DataType::Bool, Some(&[])),
            proto::value_info(&p_in, DataType::Double, None),
        ],
        vec![
            proto::value_info(&cond_out, DataType::Bool, Some(&[])),
            proto::value_info(&p_out, DataType::Double, None),
        ],
    );
    let trips = g.constant(Values::Int64(vec![k.max(100) as i64]), &[]);
    let go = g.constant(Values::Bool(vec![true]), &[]);
    let start = g.op("Shape", &[&diag], &[]);
    let uniform = proto::tensor("", &[1], &Values::Double(vec![1.0 / k as f64]));
    let p0 = g.op(
        "ConstantOfShape",
        &[&start],
        &[("value", Attr::Tensor(uniform))],
    );
    g.op("Loop", &[&trips, &go, &p0], &[("body", Attr::Graph(body))])
}

/// The answer outputs of [`to_onnx`]: `predicted_label`, `attack_probability`, `p_<class>`.
fn answers(g: &mut Graph, file: &ModelFile, core: Core) -> Vec<Message> {
    let classes = file.classes();
    let k = classes.len();
    let (columns, matrix): (Vec<String>, Option<&String>) = match &core {
        Core::Binary(p) => {
            let one = g.scalar(1.0);
            (vec![g.op("Sub", &[&one, p], &[]), p.clone()], None)
        }
        Core::Classes(p) => {
            let columns = g.split_columns(p, k);
            (columns.iter().map(|c| g.squeeze(c, 1)).collect(), Some(p))
        }
    };
    let attack: Vec<usize> = (0..k).filter(|&c| classes.is_attack(c as u32)).collect();
    let attack_probability = if !classes.has_normal() {
        g.fill_rows(&columns[0], f64::NAN)
    } else if let [only] = attack[..] {
        columns[only].clone()
    } else {
        let mut normal = g.fill_rows(&columns[0], 0.0);
        for c in (0..k).filter(|&c| !classes.is_attack(c as u32)) {
            normal = g.op("Add", &[&normal, &columns[c]], &[]);
        }
        let one = g.scalar(1.0);
        let rest = g.op("Sub", &[&one, &normal], &[]);
        let (lo, hi) = (g.scalar(0.0), g.scalar(1.0));
        g.op("Clip", &[&rest, &lo, &hi], &[])
    };
    let labels: Vec<String> = if classes.is_binary() {
        let label = &file.schema.label;
        vec![label.value_for(false), label.value_for(true)]
    } else {
        classes.names.clone()
    };
    let class = if classes.is_binary() {
        let cut = g.scalar(file.threshold());
        let attack = g.op("GreaterOrEqual", &[&attack_probability, &cut], &[]);
        g.op(
            "Cast",
            &[&attack],
            &[("to", Attr::Int(DataType::Int64 as i64))],
        )
    } else {
        let p = match matrix {
            Some(p) => p.clone(),
            None => {
                let wide: Vec<String> = columns.iter().map(|c| g.unsqueeze(c, 1)).collect();
                let refs: Vec<&str> = wide.iter().map(String::as_str).collect();
                g.op("Concat", &refs, &[("axis", Attr::Int(1))])
            }
        };
        g.op(
            "ArgMax",
            &[&p],
            &[("axis", Attr::Int(1)), ("keepdims", Attr::Int(0))],
        )
    };
    let labels = g.constant(Values::String(labels), &[k as i64]);
    let predicted = g.op("Gather", &[&labels, &class], &[("axis", Attr::Int(0))]);
    g.named(&predicted, "predicted_label");
    g.named(&attack_probability, "attack_probability");
    let mut outputs = vec![
        proto::value_info("predicted_label", DataType::String, Some(&[None])),
        proto::value_info("attack_probability", DataType::Double, Some(&[None])),
    ];
    for (name, column) in classes.names.iter().zip(&columns) {
        let output = class_output(name);
        g.named(column, &output);
        outputs.push(proto::value_info(&output, DataType::Double, Some(&[None])));
    }
    outputs
}
