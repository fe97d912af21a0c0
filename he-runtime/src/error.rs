//! The CKKS core's error type (math, ckks, nn, model). It names nothing outside the core: the
//! executor's own failures and the store's are in `exec::Error` (feature `store`).

use crate::math::representation::Representation;

/// Every failure the CKKS core reports; bad input is always one of these, never a panic.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A modulus is unusable (even, too small, too large, or not prime where a prime is needed).
    #[error("invalid modulus {modulus}: {reason}")]
    InvalidModulus {
        /// The rejected value.
        modulus: u64,
        /// Which requirement it failed.
        reason: &'static str,
    },
    /// Fewer NTT-friendly primes of the requested size exist than were asked for.
    #[error("only {found} of {wanted} NTT-friendly {bits}-bit primes exist for log N = {log_n}")]
    NotEnoughPrimes {
        /// Requested bit size.
        bits: u32,
        /// log2 of the ring degree (primes are 1 mod 2N).
        log_n: u32,
        /// How many were requested.
        wanted: usize,
        /// How many were found.
        found: usize,
    },
    /// A prime size outside what the arithmetic supports for this ring degree.
    #[error("prime size {bits} bits outside {min}..={max}")]
    InvalidPrimeBits {
        /// Requested bit size.
        bits: u32,
        /// Smallest supported size.
        min: u32,
        /// Largest supported size.
        max: u32,
    },
    /// A ring degree outside the supported range.
    #[error("log N = {log_n} outside {min}..={max}")]
    InvalidLogN {
        /// Requested log2 of the ring degree.
        log_n: u32,
        /// Smallest supported value.
        min: u32,
        /// Largest supported value.
        max: u32,
    },
    /// Two operands (or an operand and a basis) disagree on the number of RNS limbs.
    #[error("limb count mismatch: expected {expected}, found {found}")]
    LimbMismatch {
        /// What the operation needed.
        expected: usize,
        /// What it got.
        found: usize,
    },
    /// Two operands (or an operand and a basis) disagree on the ring degree.
    #[error("ring degree mismatch: expected {expected}, found {found}")]
    DegreeMismatch {
        /// What the operation needed.
        expected: usize,
        /// What it got.
        found: usize,
    },
    /// An operand is in coefficient form where NTT form is needed, or the other way round.
    #[error("representation mismatch: expected {expected:?}, found {found:?}")]
    RepresentationMismatch {
        /// What the operation needed.
        expected: Representation,
        /// What it got.
        found: Representation,
    },
    /// A buffer (data or scratch) is shorter than the operation needs.
    #[error("buffer too small: need {needed} words, got {found}")]
    BufferTooSmall {
        /// Words needed.
        needed: usize,
        /// Words provided.
        found: usize,
    },
    /// A value has no inverse modulo the given modulus.
    #[error("{value} is not invertible modulo {modulus}")]
    NotInvertible {
        /// The value.
        value: u64,
        /// The modulus.
        modulus: u64,
    },
    /// An RNS basis contains the same modulus twice (CRT needs pairwise coprime moduli).
    #[error("modulus {modulus} appears more than once in an RNS basis")]
    DuplicateModulus {
        /// The repeated modulus.
        modulus: u64,
    },
    /// A Galois element that is even or not below 2N.
    #[error("invalid Galois element {galois}: must be odd and below 2N = {two_n}")]
    InvalidGaloisElement {
        /// The rejected element.
        galois: u64,
        /// 2N for the ring in question.
        two_n: u64,
    },
    /// A requested SIMD backend is not available on this CPU or for this modulus.
    #[error("NTT backend unavailable: {reason}")]
    BackendUnavailable {
        /// Why it cannot be used.
        reason: &'static str,
    },

    // ---- model ----
    /// A model description is not valid JSON of schema `hetier-model/1` (or is inconsistent
    /// as a whole).
    #[error("malformed model description: {reason}")]
    ModelFormat {
        /// What was wrong.
        reason: String,
    },
    /// A layer of a model description is malformed or its shapes do not fit together.
    #[error("layer `{layer}`: {reason}")]
    ModelLayer {
        /// Name of the layer.
        layer: String,
        /// What was wrong.
        reason: String,
    },
    /// A layer has a `kind` this reader does not know.
    #[error("layer `{layer}` has unknown kind {kind:?}")]
    UnknownLayerKind {
        /// Name of the layer.
        layer: String,
        /// The kind found.
        kind: String,
    },
    /// A tensor a layer names is not in the weights file.
    #[error("layer `{layer}` needs tensor {tensor:?}, which the weights file lacks")]
    MissingTensor {
        /// Name of the layer.
        layer: String,
        /// Name of the tensor.
        tensor: String,
    },
    /// A tensor has the wrong shape for its layer.
    #[error("layer `{layer}`: tensor {tensor:?} has shape {found:?}, expected {expected:?}")]
    TensorShape {
        /// Name of the layer.
        layer: String,
        /// Name of the tensor.
        tensor: String,
        /// Shape the layer needs.
        expected: Vec<usize>,
        /// Shape in the file.
        found: Vec<usize>,
    },
    /// The model needs more multiplicative depth than the parameters give.
    #[error("layer `{layer}` needs {needed} level(s) but only {available} remain")]
    ModelTooDeep {
        /// First layer that runs out of levels.
        layer: String,
        /// Levels the layer consumes.
        needed: usize,
        /// Levels left at its input.
        available: usize,
    },
    /// A weights or test-set file is not a valid `safetensors` file of the expected content.
    #[error("bad tensor file {file}: {reason}")]
    WeightsFormat {
        /// File name.
        file: String,
        /// What was wrong.
        reason: String,
    },
    /// A model or table file could not be read.
    #[error("cannot read {path}: {reason}")]
    ModelIo {
        /// The path.
        path: String,
        /// The OS error.
        reason: String,
    },
    /// An input sample has the wrong number of values.
    #[error("input has {found} values, the model expects {expected}")]
    ModelInput {
        /// Values expected.
        expected: usize,
        /// Values given.
        found: usize,
    },
    /// An ONNX file is not a well-formed ModelProto (truncated, not protobuf, no graph, a
    /// tensor whose data does not match its shape).
    #[error("malformed ONNX model: {reason}")]
    OnnxFormat {
        /// What was wrong.
        reason: String,
    },
    /// An ONNX graph uses operators (or operator settings) the importer does not lower; every
    /// offending node is listed, as `name (op_type): why`.
    #[error("unsupported ONNX node(s): {}", .nodes.join("; "))]
    OnnxUnsupported {
        /// One entry per node: `name (op_type)` and, where it helps, why.
        nodes: Vec<String>,
    },

    // ---- ckks ----
    /// A parameter set exceeds the 128-bit classical security bound for ternary secrets.
    #[error(
        "log2(QP) = {log_qp:.1} bits exceeds the 128-bit bound of {bound} bits at log2 N = {log_n}"
    )]
    InsecureParameters {
        /// log2 N of the set.
        log_n: u32,
        /// log2 of the full modulus Q·P.
        log_qp: f64,
        /// Largest log2(QP) allowed for 128-bit security.
        bound: u32,
    },
    /// A parameter has an invalid value.
    #[error("invalid parameter {name}: {reason}")]
    InvalidParameter {
        /// Name of the parameter.
        name: &'static str,
        /// Why it was rejected.
        reason: String,
    },
    /// An operation needs a level below 0 (no prime left to rescale by or drop).
    #[error("operation needs level {needed} but the ciphertext is at level {level}")]
    LevelExhausted {
        /// Level of the operand.
        level: usize,
        /// Level the operation needs at least.
        needed: usize,
    },
    /// A level is above the maximum of the parameter set or above the operand's level.
    #[error("level {level} is invalid here (maximum {max})")]
    InvalidLevel {
        /// Requested level.
        level: usize,
        /// Largest allowed level.
        max: usize,
    },
    /// Two operands are at different levels and the caller did not ask for matching.
    #[error("level mismatch: {left} vs {right}")]
    LevelMismatch {
        /// Level of the left operand.
        left: usize,
        /// Level of the right operand.
        right: usize,
    },
    /// Two operands carry different scales.
    #[error("scale mismatch: 2^{left_log2:.4} vs 2^{right_log2:.4}")]
    ScaleMismatch {
        /// log2 of the left scale.
        left_log2: f64,
        /// log2 of the right scale.
        right_log2: f64,
    },
    /// An operand was made under another parameter set.
    #[error(
        "parameter mismatch: object made under parameters {found:#018x}, expected {expected:#018x}"
    )]
    ParamsMismatch {
        /// Id of the evaluator's parameters.
        expected: u64,
        /// Id found on the operand.
        found: u64,
    },
    /// No key for the requested rotation or conjugation was supplied.
    #[error("missing Galois key for element {galois_element} (rotation step {step:?})")]
    MissingGaloisKey {
        /// Galois element X -> X^g that was needed.
        galois_element: u64,
        /// The rotation step, if the operation was a rotation.
        step: Option<i64>,
    },
    /// A ciphertext has an unexpected number of polynomials (e.g. relinearising a degree-1 one).
    #[error("ciphertext degree {degree} is not supported here (expected {expected})")]
    InvalidDegree {
        /// Degree found.
        degree: usize,
        /// Degree expected.
        expected: usize,
    },
    /// Too many values for the N/2 slots.
    #[error("{len} values do not fit into {slots} slots")]
    TooManyValues {
        /// Number of values given.
        len: usize,
        /// Number of slots.
        slots: usize,
    },
    /// A value times the scale is not finite or too large to encode.
    #[error("value {value} at scale 2^{scale_log2:.2} cannot be encoded")]
    EncodingOverflow {
        /// The offending value (real or imaginary part).
        value: f64,
        /// log2 of the scale.
        scale_log2: f64,
    },
    /// A storage buffer has the wrong length for the entity it should hold.
    #[error("buffer of {found} words where {expected} are needed")]
    BufferLength {
        /// Words needed.
        expected: usize,
        /// Words supplied.
        found: usize,
    },
    /// A caller's buffer for a serialised blob is not the blob's exact length.
    #[error("blob buffer of {found} bytes where {expected} are needed")]
    BlobBufferLength {
        /// Bytes needed.
        expected: usize,
        /// Bytes supplied.
        found: usize,
    },
    /// A serialised blob ends before its declared content.
    #[error("blob truncated: {found} bytes, at least {needed} needed")]
    Truncated {
        /// Bytes needed.
        needed: usize,
        /// Bytes present.
        found: usize,
    },
    /// A serialised blob has a bad magic number, version or kind.
    #[error("bad blob header: {reason}")]
    BadHeader {
        /// What was wrong.
        reason: String,
    },
    /// A seed-compressed blob (key, public key, seeded ciphertext) of an older format version,
    /// whose seed this build would expand into other `a` parts than it was made with
    /// (format 1 expanded seeds with ChaCha20): the object must be made again.
    #[error(
        "blob format version {found} expands its seed with another PRG than this build \
         (version {supported}): regenerate it"
    )]
    RetiredSeedFormat {
        /// Version in the blob.
        found: u16,
        /// Version this build writes.
        supported: u16,
    },
    /// A serialised blob fails its checksum.
    #[error("checksum mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    ChecksumMismatch {
        /// Checksum in the blob.
        stored: u32,
        /// Checksum of the bytes read.
        computed: u32,
    },
    /// A serialised blob has a consistent checksum but invalid content.
    #[error("corrupt blob: {reason}")]
    Corrupt {
        /// What was wrong.
        reason: String,
    },
    // ---- nn ----
    /// A model or layer needs more multiplicative depth than the parameters leave.
    #[error("layer `{layer}` needs {needed} more level(s) but only {available} remain")]
    DepthExceeded {
        /// Name of the layer that ran out of levels.
        layer: String,
        /// Levels the layer consumes.
        needed: usize,
        /// Levels left at its input.
        available: usize,
    },
    /// A layer's weights, shape or input layout do not fit together.
    #[error("layer `{layer}`: {reason}")]
    LayerShape {
        /// Name of the layer.
        layer: String,
        /// What does not fit.
        reason: String,
    },
    /// A layer's slot layout needs more slots than a ciphertext has.
    #[error("layer `{layer}` needs {needed} slots but a ciphertext has {slots}")]
    LayoutTooLarge {
        /// Name of the layer.
        layer: String,
        /// Slots needed.
        needed: usize,
        /// Slots available (N/2).
        slots: usize,
    },
    // ---- bootstrapping ----
    /// A parameter set's modulus chain cannot hold a bootstrapping circuit (or leaves nothing
    /// after it).
    #[error("cannot bootstrap: {reason} (needs {needed} levels, the chain has {available})")]
    CannotBootstrap {
        /// Levels the circuit (or the request) needs.
        needed: usize,
        /// Levels available.
        available: usize,
        /// What does not fit.
        reason: &'static str,
    },
    /// A ciphertext's scale is too large for bootstrapping's modulus q_0.
    #[error("cannot bootstrap a ciphertext at scale 2^{scale_log2:.2}: at most 2^{max_log2:.2}")]
    BootstrapScale {
        /// log2 of the ciphertext's scale.
        scale_log2: f64,
        /// log2 of the largest scale allowed (q_0 / 32).
        max_log2: f64,
    },
    /// A ciphertext encodes a slot vector of a longer period than the (sparse) bootstrapper
    /// keeps: bootstrapping it would return only the average over each period.
    #[error(
        "cannot bootstrap a ciphertext encoded for {found} slots with a bootstrapper for \
         {expected} slots (encode the {expected} values repeated over all slots)"
    )]
    BootstrapSlots {
        /// The bootstrapper's slots (`BootstrapConfig::slots`, N/2 by default).
        expected: usize,
        /// The ciphertext's slot period ([`crate::ckks::Ciphertext::slots`]).
        found: usize,
    },
    /// A program's bootstrap ops were compiled for another bootstrapper than the one given to
    /// run them (a plan would then not describe the run).
    #[error("the program's bootstraps were compiled for another bootstrapper: {reason}")]
    BootstrapMismatch {
        /// What differs.
        reason: String,
    },
    /// A key expanded only for key switches up to one level was used at a higher one.
    #[error("key expanded for switches up to level {key_level} used at level {level}")]
    KeyLevel {
        /// The highest level the key's words serve.
        key_level: usize,
        /// The level of the switch.
        level: usize,
    },
    /// A key an operation needs was not supplied.
    #[error("missing key: {what}")]
    MissingKey {
        /// Which key.
        what: &'static str,
    },
    /// A bootstrap's source of pre-encoded diagonals holds none under this id (it was made
    /// for another bootstrapper).
    #[error("pre-encoded diagonal {id} of the bootstrap is missing")]
    MissingDiagonal {
        /// The diagonal's id ([`crate::ckks::bootstrap::DiagonalUse::id`]).
        id: usize,
    },
    /// A diagonal must be encoded on the fly, but its bootstrapper has handed its coefficients
    /// to the key source ([`crate::ckks::bootstrap::Bootstrapper::release_diagonal_coefficients`])
    /// and the source holds neither that encoding nor the coefficients.
    #[error(
        "diagonal {id} of the bootstrap must be encoded, but its coefficients were released and \
         the key source holds neither its encoding nor its coefficients"
    )]
    DiagonalCoefficientsReleased {
        /// The diagonal's id ([`crate::ckks::bootstrap::DiagonalUse::id`]).
        id: usize,
    },
    /// A program refers to an object the executor does not hold.
    #[error("program object {id} is missing ({reason})")]
    MissingObject {
        /// Object id within the program.
        id: u32,
        /// Why it was looked up.
        reason: &'static str,
    },

    // ---- train ----
    /// A training value is NaN or infinite.
    #[error("training data row {row}, column {col}: value {value} is not finite")]
    NonFiniteData {
        /// Sample (row) index, 0-based.
        row: usize,
        /// Column index, 0-based (the label is the last column).
        col: usize,
        /// The value found.
        value: f64,
    },
    /// A training sample has another number of features than the first one (or than the
    /// weights being trained).
    #[error("training data row {row} has {found} feature(s), expected {expected}")]
    FeatureCount {
        /// Sample (row) index, 0-based.
        row: usize,
        /// Features expected.
        expected: usize,
        /// Features found.
        found: usize,
    },
    /// Training data that cannot be used for another reason (unparsable, empty, labels of the
    /// wrong kind).
    #[error("training data: {reason}")]
    TrainData {
        /// What was wrong.
        reason: String,
    },
    /// The requested iterations need more levels than the parameters give, and there is no
    /// bootstrapping to refresh the weights.
    #[error(
        "{iters} iteration(s) of {task} need {needed} levels ({per_iter} per iteration + 1 for \
         the last margins) but the parameters give {available}: at most {max_iters} iteration(s) \
         fit without bootstrapping"
    )]
    TrainingTooDeep {
        /// The task and optimiser.
        task: String,
        /// Iterations requested.
        iters: usize,
        /// Levels one iteration consumes.
        per_iter: usize,
        /// Levels the run needs.
        needed: usize,
        /// Levels the parameters give (L).
        available: usize,
        /// Most iterations that fit.
        max_iters: usize,
    },
}

/// Result alias for the CKKS core.
pub type Result<T> = std::result::Result<T, Error>;
