"""One instance of every neuron model with a fused kernel, with non-default parameters (initial states other
than 0 where the model has them), for the tests that export networks of each model to the C++ runtime."""

import torch

from spikeops import neuron, surrogate


def _klif(**kw):
    node = neuron.KLIFNode(scale_reset=True, tau=2.5, v_reset=None, **kw)
    with torch.no_grad():
        node.k.fill_(0.8125)
    return node


# name -> a factory taking step_mode: a new neuron each call.
FUSED_NEURONS = {
    "IF": lambda step_mode: neuron.IFNode(v_threshold=0.75, v_reset=None, step_mode=step_mode),
    "LIF": lambda step_mode: neuron.LIFNode(tau=3.0, decay_input=False, v_reset=-0.25, step_mode=step_mode),
    "ParametricLIF": lambda step_mode: neuron.ParametricLIFNode(init_tau=3.0, v_reset=None, step_mode=step_mode),
    "QIF": lambda step_mode: neuron.QIFNode(tau=2.5, v_c=0.7, a0=0.75, v_rest=0.0625, v_reset=-0.125,
                                            step_mode=step_mode),
    "EIF": lambda step_mode: neuron.EIFNode(tau=2.5, delta_T=0.75, theta_rh=0.7, v_rest=0.0625, v_reset=-0.125,
                                            step_mode=step_mode),
    "Izhikevich": lambda step_mode: neuron.IzhikevichNode(tau=2.5, a=0.25, b=0.125, w_rest=-0.125, tau_w=3.0,
                                                          v_reset=-0.125, step_mode=step_mode),
    "ALIF": lambda step_mode: neuron.ALIFNode(tau=2.5, tau_adapt=20.0, beta=0.25, v_reset=None,
                                              step_mode=step_mode),
    "KLIF": lambda step_mode: _klif(step_mode=step_mode),
    "CUBALIF": lambda step_mode: neuron.CUBALIFNode(c_decay=0.375, v_decay=0.625, v_reset=-0.0625,
                                                    surrogate_function=surrogate.ATan(), step_mode=step_mode),
    "ComplementaryLIF": lambda step_mode: neuron.ComplementaryLIFNode(tau=2.5, step_mode=step_mode),
}
