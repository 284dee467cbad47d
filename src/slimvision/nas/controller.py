"""ENAS-style RL controller: an LSTM policy over a sequence of categorical decisions, trained with REINFORCE."""

from __future__ import annotations

import torch
import torch.nn as nn


class Controller(nn.Module):
    """Samples one choice per decision autoregressively: each choice is embedded and fed to an LSTM cell."""

    def __init__(self, num_choices: list[int], hidden: int = 32, temperature: float = 5.0, tanh_constant: float = 2.5):
        super().__init__()
        self.num_choices = list(num_choices)
        self.offsets = [sum(self.num_choices[:i]) for i in range(len(self.num_choices))]
        self.embed = nn.Embedding(sum(self.num_choices) + 1, hidden)  # the last row is the start token
        self.lstm = nn.LSTMCell(hidden, hidden)
        self.heads = nn.ModuleList(nn.Linear(hidden, n) for n in self.num_choices)
        # ENAS's logit shaping: temperature then c * tanh keeps early policies from saturating on noisy rewards
        self.temperature, self.tanh_constant = temperature, tanh_constant

    def _logits(self, hidden: torch.Tensor, head: nn.Linear) -> torch.Tensor:
        return self.tanh_constant * torch.tanh(head(hidden) / self.temperature)

    def sample(self, greedy: bool = False) -> tuple[list[int], torch.Tensor, torch.Tensor]:
        """(choices, summed log-probability, summed entropy) of one sampled (or most likely) decision sequence."""
        token = torch.tensor([sum(self.num_choices)])
        state = None
        choices, log_prob, entropy = [], torch.zeros(()), torch.zeros(())
        for index, head in enumerate(self.heads):
            state = self.lstm(self.embed(token), state)
            dist = torch.distributions.Categorical(logits=self._logits(state[0], head)[0])
            choice = dist.probs.argmax() if greedy else dist.sample()
            log_prob = log_prob + dist.log_prob(choice)
            entropy = entropy + dist.entropy()
            choices.append(int(choice))
            token = torch.tensor([self.offsets[index] + int(choice)])
        return choices, log_prob, entropy


class Reinforce:
    """REINFORCE with an exponential-moving-average reward baseline and an entropy bonus."""

    def __init__(self, policy: nn.Module, lr: float = 5e-3, baseline_decay: float = 0.9, entropy_weight: float = 1e-3):
        self.optimizer = torch.optim.Adam(policy.parameters(), lr=lr)
        self.baseline_decay, self.entropy_weight = baseline_decay, entropy_weight
        self.baseline: float | None = None

    def step(self, log_prob: torch.Tensor, entropy: torch.Tensor, reward: float) -> float:
        """One policy-gradient step on one sampled sequence; returns the advantage used."""
        self.baseline = reward if self.baseline is None else self.baseline_decay * self.baseline + (1 - self.baseline_decay) * reward
        advantage = reward - self.baseline
        loss = -(advantage * log_prob + self.entropy_weight * entropy)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return advantage
