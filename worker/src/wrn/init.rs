//! Where the model's tensors come from: a [`SimpleBackend`] for candle's
//! `VarBuilder` that creates every tensor from a seeded stream (see
//! [`crate::rng`]) and records it as a named `Var`.
//!
//! Recording names here is what makes checkpoints mirror the module tree:
//! each layer asks for its tensors through `vb.pp(...)`, and the full dotted
//! path becomes the key of that tensor in the store and in checkpoints.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use candle_core::{DType, Device, Result, Shape, Tensor, Var};
use candle_nn::Init;
use candle_nn::var_builder::SimpleBackend;

use crate::rng;

/// Suffixes of tensors that are state but not trainable (BN running statistics).
const BUFFER_SUFFIXES: [&str; 2] = ["running_mean", "running_var"];

pub fn is_buffer(name: &str) -> bool {
    BUFFER_SUFFIXES.iter().any(|s| name.ends_with(s))
}

/// Every tensor of one model by name: trainable parameters and buffers.
#[derive(Clone, Default)]
pub struct TensorStore {
    vars: Arc<Mutex<BTreeMap<String, Var>>>,
}

impl TensorStore {
    /// Trainable parameters, sorted by name.
    pub fn params(&self) -> Vec<(String, Var)> {
        self.all().into_iter().filter(|(n, _)| !is_buffer(n)).collect()
    }

    /// Running statistics, sorted by name.
    pub fn buffers(&self) -> Vec<(String, Var)> {
        self.all().into_iter().filter(|(n, _)| is_buffer(n)).collect()
    }

    /// Every tensor, sorted by name.
    pub fn all(&self) -> Vec<(String, Var)> {
        let vars = self.vars.lock().expect("tensor store lock poisoned");
        vars.iter().map(|(n, v)| (n.clone(), v.clone())).collect()
    }

    pub fn get(&self, name: &str) -> Option<Var> {
        self.vars.lock().expect("tensor store lock poisoned").get(name).cloned()
    }

    fn insert(&self, name: &str, var: Var) {
        self.vars.lock().expect("tensor store lock poisoned").insert(name.to_string(), var);
    }
}

/// Creates tensors from the seeded stream of their name and records them.
pub struct SeededInit {
    pub seed: u64,
    pub store: TensorStore,
}

impl SeededInit {
    fn sample(&self, shape: &Shape, name: &str, init: Init) -> Result<Vec<f64>> {
        let n = shape.elem_count();
        let mut stream = rng::init_stream(self.seed, name);
        Ok(match init {
            Init::Const(v) => vec![v; n],
            Init::Randn { mean, stdev } => (0..n).map(|_| mean + stdev * rng::standard_normal(&mut stream)).collect(),
            Init::Uniform { lo, up } => {
                use rand::Rng;
                (0..n).map(|_| lo + (up - lo) * stream.random::<f64>()).collect()
            }
            other => {
                candle_core::bail!("initialisation {other:?} of {name} is not seeded; use Const, Randn or Uniform")
            }
        })
    }
}

impl SimpleBackend for SeededInit {
    fn get(&self, shape: Shape, name: &str, init: Init, dtype: DType, dev: &Device) -> Result<Tensor> {
        if let Some(var) = self.store.get(name) {
            candle_core::bail!("tensor {name} is created twice (shape {:?})", var.shape());
        }
        let values = self.sample(&shape, name, init)?;
        let tensor = Tensor::from_vec(values, shape, &Device::Cpu)?.to_dtype(dtype)?.to_device(dev)?;
        let var = Var::from_tensor(&tensor)?;
        self.store.insert(name, var.clone());
        Ok(var.as_tensor().clone())
    }

    fn get_unchecked(&self, name: &str, _dtype: DType, _dev: &Device) -> Result<Tensor> {
        candle_core::bail!("tensor {name} requested without a shape; every WRN tensor has one")
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.store.get(name).is_some()
    }
}
