//! SGD with momentum, Nesterov and weight decay (candle-nn's SGD has
//! neither), with PyTorch's semantics at dampening 0:
//!
//! ```text
//! g   = grad + weight_decay * p
//! buf = momentum * buf + g          (buf = g on the first step)
//! g   = g + momentum * buf          (Nesterov)   or   g = buf
//! p   = p - lr * g
//! ```

use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor, Var};

pub struct Sgd {
    params: Vec<(String, Var)>,
    /// One buffer per parameter; `None` until the first step after a reset.
    momentum_buffers: Vec<Option<Tensor>>,
    momentum: f64,
    nesterov: bool,
    weight_decay: f64,
}

impl Sgd {
    pub fn new(params: Vec<(String, Var)>, momentum: f64, nesterov: bool, weight_decay: f64) -> Self {
        let momentum_buffers = vec![None; params.len()];
        Self { params, momentum_buffers, momentum, nesterov, weight_decay }
    }

    /// One update with learning rate `lr`. A parameter without a gradient
    /// (unused in the forward pass) is left alone, as in PyTorch.
    pub fn step(&mut self, grads: &GradStore, lr: f64) -> Result<()> {
        for ((_, var), buffer) in self.params.iter().zip(self.momentum_buffers.iter_mut()) {
            let Some(grad) = grads.get(var.as_tensor()) else {
                continue;
            };
            // Detached: arithmetic on a Var, or on a gradient computed from
            // the forward pass, records its inputs; the momentum buffer
            // would then keep every step's activations alive.
            let (grad, param) = (grad.detach(), var.as_tensor().detach());
            #[cfg(feature = "cudnn")]
            if let Some(buf) = buffer.as_ref().filter(|_| self.momentum != 0.0 && param.device().is_cuda()) {
                let step = crate::kernels::cuda::sgd::SgdStep {
                    lr,
                    momentum: self.momentum,
                    weight_decay: self.weight_decay,
                    nesterov: self.nesterov,
                };
                crate::kernels::cuda::sgd::step(var.as_tensor(), &grad, buf, step)?;
                continue;
            }
            let param = &param;
            let mut g = if self.weight_decay != 0.0 { (grad + (param * self.weight_decay)?)? } else { grad };
            if self.momentum != 0.0 {
                let next = match buffer.take() {
                    Some(buf) => ((buf * self.momentum)? + &g)?,
                    // A storage of its own: on CUDA later steps update
                    // the buffer in place, and `g` may be the gradient, a
                    // view that shares storage with other gradients.
                    None => g.copy()?,
                };
                g = if self.nesterov { (g + (&next * self.momentum)?)? } else { next.clone() };
                *buffer = Some(next);
            }
            var.set(&(param - (g * lr)?)?)?;
        }
        Ok(())
    }

    /// Forgets the momentum, as the official code does at each learning-rate drop.
    pub fn reset_momentum(&mut self) {
        self.momentum_buffers.iter_mut().for_each(|b| *b = None);
    }

    /// The momentum buffers that exist, by parameter name (for checkpoints).
    pub fn momentum_buffers(&self) -> impl Iterator<Item = (&str, &Tensor)> {
        self.params
            .iter()
            .zip(&self.momentum_buffers)
            .filter_map(|((name, _), b)| b.as_ref().map(|b| (name.as_str(), b)))
    }

    /// Restores the buffers of a checkpoint; parameters absent from it start without momentum.
    pub fn load_momentum(&mut self, mut lookup: impl FnMut(&str, &Var) -> Result<Option<Tensor>>) -> Result<()> {
        for ((name, var), buffer) in self.params.iter().zip(self.momentum_buffers.iter_mut()) {
            *buffer = lookup(name, var)?;
        }
        Ok(())
    }
}
