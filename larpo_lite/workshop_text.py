"""The instructor's guide's fixed text (``docs/workshop.md``, written by
:mod:`larpo_lite.workshop`): talking points, the derivations for the board, how to read each
figure, and the discussion questions.

This module holds math and teaching only. A setting is written as a ``{{placeholder}}`` that
:func:`larpo_lite.prose.render` fills from ``params/default.yaml`` when the guide is generated
(:func:`larpo_lite.workshop.guide_values`); every result (an accuracy, a count, a standard
error) is read from ``reports/`` by the answer functions of :mod:`larpo_lite.workshop`. Nothing
here states a setting, a count or a result by hand.
"""

from __future__ import annotations

# Minutes of talking points and board work per notebook: the plan's choice, not a measurement.
# A notebook runs live only when its measured default run fits inside its share of this time
# (workshop.LIVE_SHARE); the rest of its slot goes to exercises.
TALK_MIN = {
    "01_ir_analogy": 10, "02_recall_at_n": 10, "03_training_stage": 12, "04_ranking_losses": 15,
    "05_hard_negatives": 6, "06_candidate_lists": 6, "07_larpo_loop": 10, "08_scaling_up": 6,
}

TALKING_POINTS: dict[str, list[str]] = {
    "01_ir_analogy": [
        "Open with the mapping, two columns on the board: query and prompt; retriever and the "
        "LLM that samples; reranker and the reward model (here the verifier, which sees the gold "
        "answer); Recall@N and pass@N; hard negatives and wrong answers close to right ones; a "
        "candidate list and the {{n_samples}} samples of one prompt. The rest of the day fills in "
        "one row at a time, and notebook 07 closes the table with a measured number per row.",
        "The IR side first, because it is familiar: BM25 and a dense retriever on a corpus of "
        "look-alike passages. The reranker re-orders only the top of BM25's list, so it lifts "
        "Recall@1 and cannot change Recall at or beyond the depth it reranks.",
        "Then the LLM: greedy decoding is the retriever's top 1, one answer per problem. Sampling "
        "at temperature {{temperature}} retrieves a list; the verifier reranks it with the gold "
        "answer; majority vote reranks it without any label.",
        "Say why the list matters before any training appears: LARPO trains on lists drawn from "
        "the policy itself. A right answer that never shows up in the list cannot be ranked up by "
        "any reranker or any loss.",
        "Read the paired comparison aloud: the same problems scored twice (greedy, and 'a right "
        "answer anywhere in the list'); the problems gained and lost are what its standard error "
        "is made of.",
    ],
    "02_recall_at_n": [
        "Recall@N of the LLM is pass@N: the chance that at least one of N samples is right. "
        "Derive the unbiased estimator on the board (below) before showing any curve.",
        "One list of {{n_samples}} samples per problem and temperature ({{temperatures}}) gives "
        "every N up to {{n_samples}} at once: no resampling per N.",
        "The paper's Fig. 2 claim has two halves: a low temperature is the better retriever at "
        "small N (its samples are near greedy's answer), a higher one at large N (more diverse "
        "lists). Test each half on its own, paired over problems; say 'inconclusive' when a half "
        "is within 2 SE.",
        "Greedy decoding on the whole test split is the baseline every later notebook compares "
        "with; it is a single number per problem, so its SE is binomial.",
        "The explorer (sliders when opened in Jupyter, a static grid in the executed copy) lets "
        "the room pick T and N and see which problems flip.",
    ],
    "03_training_stage": [
        "Two ways to train a retriever, two stages of alignment: SFT is direct retriever "
        "optimization on gold responses; DPO is distilling a reranker (the verifier) into the "
        "retriever (the policy) from its own samples.",
        "Derive DPO on the board from the Bradley-Terry model (below): the reward never has to be "
        "learned, because the policy's log-ratio against the reference is an implicit reward.",
        "SFT on the worked solutions of {{n_train_prompts}} problems, then DPO on the "
        "SFT policy's own samples ({{k_train}} per problem), with the SFT policy as the reference.",
        "Teach the failure, do not just label it: DPO's loss falls and its margin grows while "
        "greedy accuracy can drop. The margin is a difference of two log-ratios; it also grows "
        "when both log-probabilities fall, the rejected one faster, and the mass goes to answers "
        "the policy was never shown (longer ones that hit the {{max_new_tokens}}-token cap).",
        "Where the step sizes come from: the validation study, never the test split.",
    ],
    "04_ranking_losses": [
        "The core of the paper: alignment is learning to rank. The score of a response is "
        "gamma = beta times its log-ratio against the reference; each loss is a learning-to-rank "
        "loss on the list of scores.",
        "Board: DPO is the two-item case of Plackett-Luce; the listwise generalisation is ListMLE; "
        "contrastive (InfoNCE) is one positive against a softmax over negatives; LambdaRank "
        "weighs each pair by the change in NDCG if the two swapped (derivations below).",
        "Show where each loss pushes (the bar figure) before any training result: pairwise touches "
        "two responses, the listwise losses the whole list, and with binary labels the order "
        "among equally labelled responses is noise that a label-aware loss must ignore.",
        "The trained comparison uses round 1 of notebook 07's runs: every objective sees the same "
        "sampled lists ({{k_train}} samples per prompt), so differences are the loss's, paired over "
        "the same test problems; seeds ({{train_seeds}}) add the training noise.",
        "Read the difference panel, not the accuracy panel: a listwise objective minus pairwise "
        "with its 2-SE bar; a bar across zero is inconclusive.",
    ],
    "05_hard_negatives": [
        "Which wrong answer teaches the most? The tiers, easiest to hardest: {{tiers}}.",
        "Board: the gradient of the DPO loss on the rejected response is the model's own "
        "preference for it (below): a negative it already scores low gets almost no push. Hard "
        "negatives are the ones with signal.",
        "A tier-(2) negative (another prompt's response) can be a correct solution of its own "
        "problem: the model is then taught to push down good reasoning.",
        "This notebook is a sweep: smaller rounds ({{sweep_prompts_per_iter}} prompts) and "
        "{{n_eval_sweep}} test problems; every row prints its minimum detectable effect. Read "
        "'inconclusive' as 'this run cannot tell', never as 'no difference'.",
    ],
    "06_candidate_lists": [
        "The candidate list's knobs: its size k ({{list_sizes}}), memory across rounds, "
        "and a mix of sampling temperatures ({{mix_temperatures}}).",
        "Board: with a binary verifier a list is usable only if it holds a right and a wrong "
        "answer, probability 1 - p^k - (1-p)^k (below); a larger k mostly buys usable prompts.",
        "The prediction from one overall p is too high because p varies between prompts (most are "
        "all wrong for a small model); the per-prompt prediction is the honest one.",
        "Memorization: training on older lists too is more pairs and older pairs at once; the "
        "comparison cannot tell the two apart (the exercises ask how to).",
    ],
    "07_larpo_loop": [
        "Algorithm 1 as code: sample, rerank, select the list, merge with memory, train, "
        "evaluate; {{iterations}} rounds of {{prompts_per_iter}} new prompts.",
        "One sampling budget: every arm draws {{k_train}} samples per prompt from its own policy; "
        "iterative DPO keeps the best and the worst, LARPO keeps a list and a listwise loss, "
        "offline DPO samples once from the initial policy.",
        "The best LARPO objective is chosen on validation ({{n_val}} problems), never on test; the "
        "headline arms run seeds {{train_seeds}} so that training noise enters their SE.",
        "Over-optimization is shown, not smoothed: a round that falls beyond 2 SE on validation "
        "is marked in the figure.",
        "Close the IR thread: Recall@N after training, and the full analogy table with the "
        "notebook and the number that measured each row.",
    ],
    "08_scaling_up": [
        "The same loop, from a laptop CPU to a 7B model on GPUs: only the preset changes "
        "(`params/gpu-small.yaml`, `params/gpu-7b.yaml`).",
        "Sampling is where the time goes at scale: throughput of HF generate against vLLM, "
        "recorded by `benchmarks/sampling_backends.py`, beside a short live run of the preset's "
        "own backend.",
        "Memory: `larpo-lite plan --preset gpu-7b` adds up weights, LoRA states, activations and "
        "the sampler's KV cache; phases that take turns need less than all resident.",
        "What changes at scale: a reward model replaces the verifier as the reranker, and its "
        "mistakes become the policy's targets.",
    ],
}

BOARD: dict[str, str] = {
    "01_ir_analogy": r"""**Recall@N and best-of-N.** For queries $q$ with relevant items $R_q$ and a ranking $\pi_q$,

$$\mathrm{Recall@}N = \frac{1}{|Q|}\sum_{q}\mathbb{1}\big[\exists\, i \le N:\ \pi_q(i) \in R_q\big].$$

For the LLM, the ranking is the list of samples and "relevant" is "marked right by the verifier": Recall@N is pass@N. Best-of-N reranks the $N$ samples and keeps the top one; with an oracle reranker (the verifier) it is right exactly when a right sample is in the list, so it estimates pass@N, and with a label-free reranker (majority vote) it can only do worse.""",
    "02_recall_at_n": r"""**pass@k without bias.** Draw $n$ samples of a problem, $c$ of them right. A random subset of $k$ of the $n$ holds no right sample with probability $\binom{n-c}{k}/\binom{n}{k}$ (choose all $k$ among the $n-c$ wrong ones), so

$$\widehat{\mathrm{pass@}k} = 1 - \frac{\binom{n-c}{k}}{\binom{n}{k}}, \qquad \mathbb{E}\big[\widehat{\mathrm{pass@}k}\big] = 1 - (1-p)^k$$

for a problem solved with probability $p$ per sample. It averages over every subset of $k$ of the $n$ samples; "one of the first $k$ is right" has the same mean and uses only $k$ of them, so it is noisier.

**The paired SE.** Two methods on the same $n$ problems, $d_i = s^{(a)}_i - s^{(b)}_i$:

$$\Delta = \frac1n\sum_i d_i, \qquad \mathrm{SE}(\Delta) = \sqrt{\frac{1}{n(n-1)}\sum_i (d_i - \Delta)^2}.$$

A finding needs $|\Delta| > 2\,\mathrm{SE}$; the minimum detectable effect (80% power, two-sided 5%) is $2.8\,\mathrm{SE}$.""",
    "03_training_stage": r"""**DPO from the Bradley-Terry model.**

1. Bradley-Terry: a reward $r$ makes $y_w$ preferred to $y_l$ with probability $P(y_w \succ y_l \mid x) = \sigma\big(r(x, y_w) - r(x, y_l)\big)$.
2. RLHF maximises $\mathbb{E}_{y\sim\pi}[r(x,y)] - \beta\,\mathrm{KL}\big(\pi(\cdot\mid x)\,\|\,\pi_{\mathrm{ref}}(\cdot\mid x)\big)$, whose maximiser is $\pi^*(y\mid x) = \frac{1}{Z(x)}\,\pi_{\mathrm{ref}}(y\mid x)\,e^{r(x,y)/\beta}$.
3. Solve for the reward: $r(x,y) = \beta \log\frac{\pi^*(y\mid x)}{\pi_{\mathrm{ref}}(y\mid x)} + \beta\log Z(x)$. The policy's log-ratio **is** a reward, up to a term that depends on $x$ only.
4. Put it into Bradley-Terry: $\beta\log Z(x)$ cancels in the difference, so with the implicit reward $\gamma(x,y) = \beta\log\frac{\pi_\theta(y\mid x)}{\pi_{\mathrm{ref}}(y\mid x)}$

$$\mathcal{L}_{\mathrm{DPO}} = -\log\sigma\big(\gamma(x,y_w) - \gamma(x,y_l)\big).$$

At the first step $\pi_\theta = \pi_{\mathrm{ref}}$, both $\gamma$ are 0 and the loss is $\ln 2$. The loss only sees the **margin** $\gamma_w - \gamma_l$: it can fall while $\log\pi_\theta(y_w)$ falls too.""",
    "04_ranking_losses": r"""**From DPO to Plackett-Luce (ListMLE).** Plackett-Luce gives a ranking $y_1 \succ \dots \succ y_K$ the probability of picking, at each position, that response among those left:

$$P(y_1 \succ \dots \succ y_K \mid x) = \prod_{i=1}^{K} \frac{e^{r(x, y_i)}}{\sum_{j \ge i} e^{r(x, y_j)}}.$$

Substitute the implicit reward $r = \gamma + \beta\log Z(x)$ as for DPO: the factor $e^{\beta\log Z(x)}$ is common to every term of each fraction and cancels. The negative log-likelihood of the reranker's order is ListMLE,

$$\mathcal{L}_{\mathrm{ListMLE}} = \sum_{i=1}^{K}\Big[\log\sum_{j\ge i} e^{\gamma_j} - \gamma_i\Big],$$

and for $K = 2$ it is $\log(e^{\gamma_1} + e^{\gamma_2}) - \gamma_1 = -\log\sigma(\gamma_1 - \gamma_2)$: DPO is the two-item case, LARPO's listwise loss its generalisation. With binary labels only strictly worse responses compete with $y_i$ (ties are sampling order, noise).

**Contrastive (InfoNCE).** One positive $y^+$ against negatives $N$, a softmax over the list:

$$\mathcal{L}_{\mathrm{con}} = -\log\frac{e^{\gamma^+}}{e^{\gamma^+} + \sum_{j\in N} e^{\gamma_j}},\qquad -\frac{\partial\mathcal{L}}{\partial\gamma_j} = -p_j,\quad p_j = \frac{e^{\gamma_j}}{e^{\gamma^+} + \sum_{k\in N} e^{\gamma_k}}.$$

It is Plackett-Luce's first factor ("who comes first"); each negative is pushed down by its softmax weight, so the hardest negatives (highest score) are pushed most. One negative gives DPO again.

**LambdaRank.** A pairwise logistic loss on every pair with $\ell_i > \ell_j$, each weighted by how much NDCG would change if $i$ and $j$ swapped places under the current scores. With gain $G = 2^{\ell}-1$, discount $D(\tau) = \log(1+\tau)$ at rank $\tau$ and $\mathrm{DCG} = \sum_i G_i / D(\tau_i)$, a swap changes only the two terms:

$$|\Delta\mathrm{NDCG}_{ij}| = \frac{|G_i - G_j|\,\big|1/D(\tau_i) - 1/D(\tau_j)\big|}{\mathrm{IDCG}},\qquad \mathcal{L}_{\mathrm{LR}} = -\sum_{\ell_i > \ell_j} |\Delta\mathrm{NDCG}_{ij}|\,\log\sigma(\gamma_i - \gamma_j).$$

With binary labels a pair of equal labels has $G_i = G_j$ and weight 0: only right-against-wrong pairs count, more when they sit far apart near the top.""",
    "05_hard_negatives": r"""**Why hard negatives carry the signal.** With $\Delta = \gamma_w - \gamma_l$ and $\mathcal{L} = -\log\sigma(\Delta)$,

$$\frac{\partial\mathcal{L}}{\partial\gamma_l} = \sigma(\gamma_l - \gamma_w).$$

The push on the rejected response is the model's own probability of preferring it. A negative the policy already scores far below the positive (an unrelated answer) gives $\sigma \approx 0$: nothing to learn. A negative it scores close to or above the positive (its own wrong answer at a low temperature) gives the largest push.""",
    "06_candidate_lists": r"""**How many lists are usable.** A list of $k$ samples from a problem solved with probability $p$ per sample teaches something only if it holds a right and a wrong answer:

$$P(\text{usable}) = 1 - p^k - (1-p)^k.$$

Over prompts with different $p$, $\mathbb{E}[p^k] \ge (\mathbb{E}p)^k$ (Jensen, $x^k$ is convex), so one overall $\bar p$ over-predicts usable lists; the per-prompt prediction averages $1 - p_q^k - (1-p_q)^k$ over prompts.""",
    "07_larpo_loop": r"""**Algorithm 1.** For $t = 1..T$: sample $y_{1..k} \sim \pi_{t-1}(\cdot\mid x)$ (retrieve), rank by $r(x,y)$ (rerank), select a list (hard negatives), merge with memory (candidate lists), $\pi_t = \arg\min \mathcal{L}_{\mathrm{rank}}$ (train), evaluate.

**Why paired.** For two arms scored on the same $n$ problems,

$$\mathrm{Var}(\bar a - \bar b) = \frac{\mathrm{Var}(a) + \mathrm{Var}(b) - 2\,\mathrm{Cov}(a, b)}{n}.$$

Problems that both arms solve (or both miss) make the covariance large and positive; only the problems that flip carry variance. Two separate binomial SEs leave the covariance out and overstate the noise.""",
    "08_scaling_up": r"""**A memory budget.** For $P$ parameters at $b$ bytes each, LoRA with $P_{\mathrm{LoRA}}$ trainable parameters and AdamW:

$$M \approx \underbrace{P\,b}_{\text{weights}} + \underbrace{16\,P_{\mathrm{LoRA}}}_{\text{fp32 weight, grad, two moments}} + \text{activations} + \text{the sampler's KV cache}.$$

With LoRA the frozen weights dominate. Data parallel copies everything to each GPU; FSDP / ZeRO-3 shard weights, gradients and optimizer states across the $G$ GPUs (about $1/G$ each) at the price of gathering them layer by layer.""",
}

# How to read each figure (figures/<name>.png); the panels' titles and axes come from the data
# file written with it (figures/<name>.data.json), so a figure not listed here is still described.
FIGURE_NOTES: dict[str, str] = {
    "01_ir_analogy": "Left, the IR side: Recall@N of each retriever against N; the reranker's "
    "curve starts above BM25's and meets it at the depth it reranks. Right, the LLM on the same "
    "axes: greedy decoding has one answer per problem (a flat line, its 2-SE band shaded), "
    "best-of-N with the verifier rises with N, majority vote stays near greedy. The gap at the "
    "largest N between the verifier's curve and greedy is what the list holds and the top 1 misses.",
    "02_recall_at_n": "One Recall@N curve per temperature (bars 2 SE over problems) beside the "
    "retrievers' curves. Read where the curves cross: the coolest temperature leads at small N; "
    "whether a hotter one leads at large N is the crossover. Overlapping bars at large N are the "
    "'inconclusive' half.",
    "03_training_stage": "(a) greedy accuracy per stage, 2-SE bars; (b) Recall@N per stage: SFT "
    "lifts the whole curve, the DPO step may not; (c) SFT's loss; (d) DPO's loss from ln 2 "
    "falling while the margin (right axis) grows. Put (a) beside (d): the training signal "
    "improves while test accuracy can drop.",
    "03_dpo_diagnosis": "The DPO step per optimizer step: the policy's log-probabilities of the "
    "chosen and the rejected responses (the reference's dotted) and their change from the "
    "reference, beside loss and margin; per stage, answer length and the share cut at the cap. "
    "Look for both log-probabilities falling while the margin grows.",
    "03_tuning_study": "One row per setting of the validation study: its paired change on "
    "validation from its starting policy, 2-SE bars; the diamond is the setting chosen for its "
    "objective. A bar across zero is a setting that did not move the model.",
    "04_loss_gradients": "The push -dL/dgamma on each list position for each loss, at equal "
    "scores and on a list the model already ranks: pairwise touches the first and the last only, "
    "contrastive pushes the best up and spreads the push down over the negatives, ListMLE pushes "
    "every position, LambdaRank every right-wrong pair.",
    "04_loss_push": "Each loss's value and its push per position on one example list: where a "
    "loss is already satisfied (a large margin) its push fades first.",
    "04_ranking_losses": "Left: greedy accuracy after round 1 per objective (2-SE bars), the "
    "initial policy as a line. Right: each listwise objective minus pairwise on the same lists, "
    "2 paired SE: a bar that crosses zero is inconclusive. Read the right panel.",
    "05_hard_negatives": "Left: test accuracy after training with each negative tier, easiest to "
    "hardest, 2-SE bars, the initial policy as a line. Right: the same for the temperature the "
    "hardest negatives were sampled at. Check the bars before the means: overlapping bars are "
    "this sweep's usual answer.",
    "06_candidate_lists": "The panels: accuracy against list size k; usable lists observed (with "
    "2-SE bars) against the overall-p and per-prompt predictions; memorization after the last "
    "round; one temperature against a mix. The usable-lists panel is the one with a mechanism: "
    "start there.",
    "07_larpo_loop": "Left: test greedy accuracy per round for every arm (seed mean), bars 2 SE of "
    "the change from round 0. Right: validation accuracy, the split the settings were "
    "chosen on (the first seed); a red ring marks an over-optimized round (beyond 2 SE below the round before).",
    "07_recall_after": "Recall@N after the last round for the initial policy and the headline "
    "arms: does training lift only N = 1 (sharpening the top of the list) or the whole curve "
    "(better retrieval)? The paper's Table 6 asks the same.",
    "08_scaling_up": "Sampling throughput per backend on a log axis (the live run among the "
    "recorded benchmark runs); the 7B memory plan as parts against the GPU's memory; the "
    "planner's estimate against peaks measured on the CPU, on the diagonal when it is right.",
}

# The discussion questions: (question, answer) per notebook, each answer the name of a function
# of workshop.ANSWERS that reads this run's number and its SE from reports/.
QUESTIONS: dict[str, list[tuple[str, str]]] = {
    "01_ir_analogy": [
        ("Greedy decoding is the retriever's top 1. Why can a list of {{n_samples}} samples hold a "
         "right answer that greedy decoding misses?", "list_vs_greedy"),
        ("The verifier sees the gold answer; majority vote does not. Which would you trust on "
         "open-ended prompts, and what replaces both there?", "verifier_vs_majority"),
        ("The IR reranker cannot tell a wrong operation from the right one. What is the LLM "
         "equivalent of such a look-alike negative, and does training on it help?", "look_alike"),
    ],
    "02_recall_at_n": [
        ("Why is 'a right answer among the first k samples' unbiased but noisier than the "
         "estimator of Chen et al.?", "pass_at_k_noise"),
        ("Which temperature is best at the smallest N, which at the largest, and is each "
         "difference beyond two paired standard errors?", "best_temperatures"),
        ("What would have to change (model, task, N, problems) for the paper's crossover to show "
         "clearly?", "crossover_power"),
    ],
    "03_training_stage": [
        ("SFT trains on gold responses only: in IR terms, which negatives does it use, and what "
         "did it do to Recall@N?", "sft_negatives"),
        ("DPO skips prompts whose samples are all right or all wrong. What does that leave a weak "
         "model to learn from?", "dpo_usable"),
        ("DPO's loss fell and its margin grew. Did accuracy follow, and how can both be true?",
         "dpo_failure"),
    ],
    "04_ranking_losses": [
        ("Pairwise sees only the first and the last response. What does a listwise loss gain from "
         "the middle of the list, and when is that middle noise?", "listwise_vs_pairwise"),
        ("Why does each loss start where it does at gamma = 0, and what does that mean for "
         "comparing their learning rates?", "start_losses"),
        ("Is the spread over seeds as large as the gap between objectives? What would you change "
         "to separate them?", "seed_spread"),
    ],
    "05_hard_negatives": [
        ("Why should a negative close to the positive teach more than an unrelated one, and did "
         "it here?", "hard_vs_unrelated"),
        ("A tier-(2) negative can be a correct answer to its own question. What is the model then "
         "taught to push down?", "other_prompt"),
        ("With the minimum detectable effect beside each row, which tier comparisons could this "
         "run have detected at all?", "tier_power"),
    ],
    "06_candidate_lists": [
        ("Why does 1 - p^k - (1-p)^k over-predict usable lists when one overall p is used?",
         "usable_lists"),
        ("Memorization trains on more pairs: how would you separate 'older lists' from 'more "
         "lists'?", "memory"),
        ("Why might a mix of temperatures give more useful lists than one temperature?",
         "temperature_mix"),
    ],
    "07_larpo_loop": [
        ("Every arm is scored on the same problems: why does that make the paired standard error "
         "smaller than the binomial one?", "paired_vs_binomial"),
        ("The best LARPO objective is chosen on validation, never on test. What goes wrong "
         "otherwise?", "chosen_on_validation"),
        ("Which of the paper's Table 2 claims does this run reproduce, contradict, or leave open?",
         "table_2"),
        ("After training, did Recall@N rise at every N or only at N = 1?", "recall_after"),
    ],
    "08_scaling_up": [
        ("Where does vLLM's advantage over HF generate come from, and why does it grow with the "
         "number of samples?", "throughput"),
        ("With LoRA, what dominates a 7B model's training memory, and what do FSDP / ZeRO-3 "
         "divide?", "memory_plan"),
        ("Which parts of notebooks 01-07 change when the reranker is a reward model instead of a "
         "verifier?", "reward_model"),
    ],
}
