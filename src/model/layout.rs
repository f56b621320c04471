//! Channels-last (NHWC) memory for evaluation passes. oneDNN's CPU convolutions run on NHWC
//! without reordering every input and output; with the convolution weights in that layout the
//! whole network follows it (batch norm, ReLU and additions keep their input's layout). Measured
//! on the fmnist encoder's eval forward (PyTorch, 2 threads): 1.25-1.4x. The values are the same
//! up to float rounding of the convolutions.
//!
//! Training in channels-last is `model.memory_format` (see `ResNet`); a network already in that
//! layout is left as it is by the evaluation scope.

use tch::{nn, Device, Tensor};

extern "C" {
    fn unmix_channels_last(t: *const torch_sys::C_tensor) -> *mut torch_sys::C_tensor;
    fn unmix_is_channels_last(t: *const torch_sys::C_tensor) -> i32;
}

/// `t` in channels-last memory (a copy unless it already is).
pub fn channels_last(t: &Tensor) -> Tensor {
    // SAFETY: `t` is a live tensor for the call; the shim only reads it.
    let p = unsafe { unmix_channels_last(t.as_ptr()) };
    assert!(!p.is_null(), "libtorch could not make a channels-last copy of a tensor of shape {:?}", t.size());
    // SAFETY: a non-null result is a new tensor the shim allocated for us to own.
    unsafe { Tensor::from_ptr(p) }
}

/// Whether `t` is a 4-d tensor in channels-last memory.
pub fn is_channels_last(t: &Tensor) -> bool {
    // SAFETY: `t` is a live tensor for the call; the shim only reads its strides.
    let r = unsafe { unmix_is_channels_last(t.as_ptr()) };
    assert!(r >= 0, "libtorch could not read the layout of a tensor of shape {:?}", t.size());
    r == 1
}

/// Puts the 4-d variables (convolution weights) of a store in channels-last memory until dropped,
/// then back in the standard layout. Only on the CPU, where it pays; elsewhere it does nothing.
pub struct ChannelsLast {
    vars: Vec<Tensor>,
}

impl ChannelsLast {
    pub fn for_eval(vs: &nn::VarStore, device: Device) -> ChannelsLast {
        if device != Device::Cpu {
            return ChannelsLast { vars: Vec::new() };
        }
        let mut vars: Vec<Tensor> =
            vs.variables().into_values().filter(|t| t.dim() == 4 && !is_channels_last(t)).collect();
        tch::no_grad(|| {
            for v in vars.iter_mut() {
                let cl = channels_last(v);
                v.set_data(&cl);
            }
        });
        ChannelsLast { vars }
    }
}

impl Drop for ChannelsLast {
    fn drop(&mut self) {
        tch::no_grad(|| {
            for v in self.vars.iter_mut() {
                let c = v.contiguous();
                v.set_data(&c);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    #[test]
    fn eval_scope_switches_layout_keeps_values_and_restores() {
        let vs = nn::VarStore::new(Device::Cpu);
        let conv = nn::conv2d(vs.root() / "c", 3, 8, 3, nn::ConvConfig { padding: 1, ..Default::default() });
        tch::manual_seed(0);
        let x = Tensor::randn([4, 3, 6, 6], (Kind::Float, Device::Cpu));
        let before = tch::no_grad(|| x.apply(&conv));
        let w = vs.variables()["c.weight"].shallow_clone();
        let strides = w.stride();
        {
            let _cl = ChannelsLast::for_eval(&vs, Device::Cpu);
            // NHWC strides for (8, 3, 3, 3): C is innermost.
            assert_eq!(w.stride(), vec![27, 1, 9, 3]);
            let during = tch::no_grad(|| x.apply(&conv));
            assert!(during.allclose(&before, 1e-5, 1e-6, false));
            let y = channels_last(&during);
            assert_eq!(y.stride()[1], 1);
        }
        assert_eq!(w.stride(), strides);
        assert!(w.is_contiguous());
        let after = tch::no_grad(|| x.apply(&conv));
        assert!(after.allclose(&before, 0.0, 0.0, false));
    }

    #[test]
    fn one_channel_tensors_get_channels_last_strides() {
        // With one channel the standard layout is already channels-last contiguous, and libtorch's
        // contiguous(ChannelsLast) returns it with its standard strides; convolutions then suggest
        // the standard layout for their output. The copy must carry NHWC strides.
        let x = Tensor::arange(2 * 5 * 7, (Kind::Float, Device::Cpu)).view([2, 1, 5, 7]);
        let y = channels_last(&x);
        assert_eq!(y.stride(), vec![35, 1, 7, 1]);
        assert!(y.equal(&x));
        // A 3 x 3 convolution of it with NHWC weights gives an NHWC output.
        let w = channels_last(&Tensor::ones([4, 1, 3, 3], (Kind::Float, Device::Cpu)));
        assert_eq!(w.stride(), vec![9, 1, 3, 1]);
        let out = y.conv2d(&w, None::<Tensor>, [1, 1], [1, 1], [1, 1], 1);
        assert_eq!(out.stride(), vec![140, 1, 28, 4]);
        // Several channels: the usual NHWC copy.
        assert_eq!(
            channels_last(&Tensor::zeros([2, 3, 5, 7], (Kind::Float, Device::Cpu))).stride(),
            vec![105, 1, 21, 3]
        );
    }
}
