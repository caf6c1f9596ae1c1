"""SGD as the AlexNet paper writes it, and a step learning-rate schedule."""

from .._device import array_module, to_host


class SGD:
    """Krizhevsky, Sutskever & Hinton 2012, section 5:

        v <- momentum * v - weight_decay * lr * w - lr * grad
        w <- w + v

    (momentum 0.9 and weight decay 0.0005 in the paper). The decay applies to every parameter,
    as the rule is written.
    """

    def __init__(self, parameters, lr, momentum=0.9, weight_decay=0.0005):
        self.parameters = [p for _, p in parameters]
        self.lr, self.momentum, self.weight_decay = lr, momentum, weight_decay
        self.velocity = [array_module(p.data).zeros_like(p.data) for p in self.parameters]

    def step(self):
        for p, v in zip(self.parameters, self.velocity):
            v *= self.momentum
            v -= (self.weight_decay * self.lr) * p.data
            v -= self.lr * p.grad
            p.data += v

    def state_dict(self):
        return {f"velocity.{i}": to_host(v) for i, v in enumerate(self.velocity)}

    def load_state_dict(self, state):
        for i, v in enumerate(self.velocity):
            v[...] = array_module(v).asarray(state[f"velocity.{i}"])


class StepLR:
    """lr = base_lr * gamma ** (epoch // step_size)."""

    def __init__(self, optimizer, step_size, gamma=0.1):
        self.optimizer, self.step_size, self.gamma = optimizer, step_size, gamma
        self.base_lr = optimizer.lr

    def set_epoch(self, epoch):
        self.optimizer.lr = self.base_lr * self.gamma ** (epoch // self.step_size)
        return self.optimizer.lr
