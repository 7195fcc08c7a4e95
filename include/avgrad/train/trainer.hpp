// The training loop: epochs of seeded batches, gradient accumulation, an LR schedule, evaluation
// every N steps, early stopping, the best checkpoint kept, CSV / JSON-lines logs, a progress bar,
// and the cost of the run (wall time, forward and backward passes, examples seen). What a step
// does to a batch is the Defense's business (defense.hpp, mixup.hpp, guided_mixup.hpp,
// adversarial.hpp); the loop is the same for all of them.
//
// Keeps true: batch (epoch, index) is a pure function of the source's seed, so a run resumed from
// a checkpoint continues bit-identically — the checkpoint holds the model, the optimizer, the
// schedule, the trainer's generator (mix-up λ, attack seeds) and the default generator (dropout),
// the position in the data, the running statistics, the cost so far and the defense's own state.
#pragma once

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "avgrad/data/loader.hpp"
#include "avgrad/optim/clip.hpp"
#include "avgrad/train/checkpoint.hpp"
#include "avgrad/train/defense.hpp"
#include "avgrad/train/progress.hpp"

namespace avgrad::train {

// ---- data --------------------------------------------------------------------------------------

/// A labelled audio-visual set held in memory: audio (N, …), video (N, …) (either may be
/// undefined), labels as class indices (N) or multi-hot rows (N, K).
template <Floating T> struct TensorData {
  Tensor<T, Cpu> audio{}, video{};
  Labels<T> y{};

  std::int64_t size() const { return y.multi_label() ? y.multi_hot.size(0) : y.classes.size(0); }
  void check(const char* who) const {
    AVGRAD_CHECK(y.classes.defined() != y.multi_hot.defined(), who,
                 "labels need exactly one of class indices (N) or multi-hot rows (N, K)");
    AVGRAD_CHECK(audio.defined() || video.defined(), who, "no input: both modalities are missing");
    const std::int64_t n = size();
    if (audio.defined())
      AVGRAD_CHECK(audio.dim() >= 1 && audio.size(0) == n, who, "audio of shape ", audio.shape(), " for ", n,
                   " labels");
    if (video.defined())
      AVGRAD_CHECK(video.dim() >= 1 && video.size(0) == n, who, "video of shape ", video.shape(), " for ", n,
                   " labels");
  }
  /// The examples `idx`, in that order.
  AVBatch<T> rows(const std::vector<std::int64_t>& idx) const {
    NoGradGuard no_grad;
    const auto i = from_vector<std::int64_t>(idx);
    AVBatch<T> b;
    if (audio.defined()) b.x.audio = index_select(audio, 0, i);
    if (video.defined()) b.x.video = index_select(video, 0, i);
    if (y.multi_label())
      b.y.multi_hot = index_select(y.multi_hot, 0, i);
    else
      b.y.classes = index_select(y.classes, 0, i);
    return b;
  }
  /// Every example as one batch.
  AVBatch<T> all() const { return {{audio, video}, y}; }
};

/// Where training batches come from. batch(epoch, index) must be a pure function of its arguments
/// (and the source's configuration): that is what makes a resumed run identical.
template <Floating T> class BatchSource {
 public:
  virtual ~BatchSource() = default;
  virtual std::int64_t batches_per_epoch() const = 0;
  virtual AVBatch<T> batch(std::int64_t epoch, std::int64_t index) const = 0;
};

/// Minibatches of a TensorData in a seeded random order per epoch (data::RandomSampler).
template <Floating T> class ShuffledBatches final : public BatchSource<T> {
 public:
  ShuffledBatches(const TensorData<T>& data, std::int64_t batch_size, std::uint64_t seed, bool drop_last = false)
      : data_(data), batch_(batch_size), drop_last_(drop_last), sampler_(data.size(), seed) {
    data.check("ShuffledBatches");
    AVGRAD_CHECK(batch_size >= 1, "ShuffledBatches", "batch_size must be >= 1, got ", batch_size);
    AVGRAD_CHECK(batches_per_epoch() >= 1, "ShuffledBatches", "no batch: ", data.size(), " examples, batch size ",
                 batch_size, drop_last ? " with drop_last" : "");
  }
  std::int64_t batches_per_epoch() const override {
    const std::int64_t n = data_.size();
    return drop_last_ ? n / batch_ : (n + batch_ - 1) / batch_;
  }
  AVBatch<T> batch(std::int64_t epoch, std::int64_t index) const override {
    AVGRAD_CHECK(index >= 0 && index < batches_per_epoch(), "ShuffledBatches", "batch ", index, " of an epoch of ",
                 batches_per_epoch());
    const auto order = sampler_.indices(epoch);
    const auto lo = static_cast<std::size_t>(index * batch_);
    const auto hi = std::min(order.size(), lo + static_cast<std::size_t>(batch_));
    return data_.rows(std::vector<std::int64_t>(order.begin() + static_cast<std::ptrdiff_t>(lo),
                                                order.begin() + static_cast<std::ptrdiff_t>(hi)));
  }

 private:
  TensorData<T> data_;  // a copy: tensors share storage, and a temporary argument cannot dangle
  std::int64_t batch_;
  bool drop_last_;
  data::RandomSampler sampler_;
};

/// Loss and accuracy of a model on a set (eval mode and no gradient; the mode is restored).
struct EvalMetrics {
  double loss = NAN, accuracy = NAN;
};
template <AVModel M>
EvalMetrics evaluate(M& model, const TensorData<typename M::value_type>& data, std::int64_t batch = 256) {
  using D = typename M::device_type;
  data.check("evaluate");
  AVGRAD_CHECK(batch >= 1 && data.size() >= 1, "evaluate", "need batch >= 1 and a non-empty set");
  ModeGuard<M> mode(model, false);
  NoGradGuard no_grad;
  double loss = 0;
  std::int64_t hits = 0;
  for (std::int64_t s = 0; s < data.size(); s += batch) {
    const std::int64_t e = std::min(data.size(), s + batch);
    std::vector<std::int64_t> idx;
    for (std::int64_t i = s; i < e; ++i) idx.push_back(i);
    const auto b = data.rows(idx).template to<D>();
    const auto logits = model.forward(b.x).logits;
    loss += static_cast<double>(label_loss(logits, b.y).template to<Cpu>().item()) * static_cast<double>(e - s);
    hits += correct(logits, b.y);
  }
  const double n = static_cast<double>(data.size());
  return {loss / n, static_cast<double>(hits) / n};
}

// ---- the trainer -------------------------------------------------------------------------------

struct TrainerOptions {
  std::int64_t epochs = 1;
  std::int64_t max_steps = 0;   ///< > 0: stop after this many optimizer steps (before the epochs end)
  std::int64_t accumulate = 1;  ///< micro-batches per optimizer step; each loss is scaled by 1/accumulate
  double clip_grad_norm = 0;    ///< > 0: rescale gradients to this global L2 norm before each step
  std::int64_t eval_every = 0;  ///< evaluate every N optimizer steps; 0: at the end of every epoch
  std::int64_t eval_batch = 256;
  bool monitor_loss = false;  ///< early stopping / best checkpoint on validation loss (lower), else accuracy
  std::int64_t patience = 0;  ///< > 0: stop after this many evaluations without improvement
  std::filesystem::path checkpoint_dir{};        ///< empty: no checkpoints; else last.safetensors and best.safetensors
  std::int64_t checkpoint_every = 0;             ///< > 0: also write last.safetensors every N steps
  std::int64_t log_every = 0;                    ///< > 0: a log row every N steps besides the evaluation rows
  std::filesystem::path log_csv{}, log_jsonl{};  ///< empty: no such log; rows are appended
  bool progress = true;                          ///< a progress bar on stderr
  std::uint64_t seed = 0;                        ///< the trainer's generator (mix-up λ, attack seeds, partners)

  void check() const {
    const char* who = "Trainer";
    AVGRAD_CHECK(epochs >= 1 && max_steps >= 0 && accumulate >= 1, who,
                 "need epochs >= 1, max_steps >= 0 and accumulate >= 1, got ", epochs, ", ", max_steps, ", ",
                 accumulate);
    AVGRAD_CHECK(clip_grad_norm >= 0 && std::isfinite(clip_grad_norm), who, "clip_grad_norm must be finite and >= 0");
    AVGRAD_CHECK(eval_every >= 0 && eval_batch >= 1 && patience >= 0 && checkpoint_every >= 0 && log_every >= 0, who,
                 "eval_every, patience, checkpoint_every and log_every must be >= 0 and eval_batch >= 1");
  }
};

/// One line of the logs.
struct LogRow {
  std::int64_t step = 0;
  double epoch = 0;  ///< fractional: micro-batches done / micro-batches per epoch
  double lr = NAN;
  double train_loss = NAN, train_accuracy = NAN;  ///< means since the previous row
  double val_loss = NAN, val_accuracy = NAN;      ///< NaN on rows without evaluation
  Cost cost{};
};

struct TrainResult {
  std::int64_t steps = 0;
  bool stopped_early = false;
  double best_metric = NAN;
  std::int64_t best_step = -1;
  Cost cost{};
  std::vector<LogRow> history{};  ///< the rows of this fit() call
};

/// Batches come from the host (BatchSource) and move to the model's device one at a time;
/// model, optimizer and defense live there.
template <AVModel M> class Trainer {
 public:
  using T = typename M::value_type;
  using D = typename M::device_type;

  /// The model, optimizer, defense and scheduler (optional) must outlive the trainer.
  Trainer(M& model, optim::Optimizer<T, D>& optimizer, Defense<M>& defense, TrainerOptions o = {},
          optim::LRScheduler* scheduler = nullptr)
      : model_(model), opt_(optimizer), defense_(defense), sched_(scheduler), o_(std::move(o)), gen_(o_.seed) {
    o_.check();
  }

  /// Restores everything a checkpoint written by this trainer holds; fit() then continues from it.
  void resume(const std::filesystem::path& path) {
    AVGRAD_CHECK(std::filesystem::is_regular_file(path), "Trainer::resume", "no checkpoint at '", path.string(), "'");
    CheckpointParts<T, D> parts;
    parts.module = &model_;
    parts.optimizer = &opt_;
    parts.scheduler = sched_;
    parts.generator = &gen_;
    load_checkpoint(path, parts);
    const auto& md = parts.metadata;
    const char* who = "Trainer::resume";
    auto prefixed = [&](const std::string& p) {
      std::map<std::string, std::string> out;
      for (const auto& [k, v] : md)
        if (k.rfind(p, 0) == 0) out.emplace(k.substr(p.size()), v);
      return out;
    };
    step_ = parts.step;
    micro_ = detail::parse_int(md, "trainer.micro", who);
    best_ = detail::parse_double(md, "trainer.best", who);
    best_step_ = detail::parse_int(md, "trainer.best_step", who);
    bad_evals_ = detail::parse_int(md, "trainer.bad_evals", who);
    run_loss_ = detail::parse_double(md, "trainer.run_loss", who);
    run_hits_ = detail::parse_double(md, "trainer.run_hits", who);
    run_n_ = detail::parse_double(md, "trainer.run_n", who);
    run_pred_ = detail::parse_double(md, "trainer.run_pred", who);
    default_generator().set_state(static_cast<std::uint64_t>(detail::parse_int(md, "trainer.default_seed", who)),
                                  static_cast<std::uint64_t>(detail::parse_int(md, "trainer.default_offset", who)));
    cost_.load_state_dict(prefixed("cost."));
    defense_.load_state_dict(prefixed("defense."));
  }

  /// Writes a checkpoint of the current state (what resume() reads).
  void save(const std::filesystem::path& path) const {
    // save_checkpoint only reads the parts; CheckpointParts holds mutable pointers for loading.
    CheckpointParts<T, D> parts;
    parts.module = const_cast<M*>(&model_);
    parts.optimizer = const_cast<optim::Optimizer<T, D>*>(&opt_);
    parts.scheduler = sched_;
    parts.generator = const_cast<Generator*>(&gen_);
    parts.step = step_;
    auto& md = parts.metadata;
    md["trainer.micro"] = std::to_string(micro_);
    md["trainer.best"] = detail::exact(best_);
    md["trainer.best_step"] = std::to_string(best_step_);
    md["trainer.bad_evals"] = std::to_string(bad_evals_);
    md["trainer.run_loss"] = detail::exact(run_loss_);
    md["trainer.run_hits"] = detail::exact(run_hits_);
    md["trainer.run_n"] = detail::exact(run_n_);
    md["trainer.run_pred"] = detail::exact(run_pred_);
    md["trainer.default_seed"] = std::to_string(default_generator().seed());
    md["trainer.default_offset"] = std::to_string(default_generator().offset());
    md["trainer.defense"] = defense_.name();
    for (const auto& [k, v] : current_cost().state_dict()) md["cost." + k] = v;
    for (const auto& [k, v] : defense_.state_dict()) md["defense." + k] = v;
    if (!path.parent_path().empty()) std::filesystem::create_directories(path.parent_path());
    save_checkpoint(path, parts);
  }

  /// Trains on `source` until the epochs (or max_steps) are done or early stopping ends it;
  /// evaluates on `val` when given.
  TrainResult fit(const BatchSource<T>& source, const TensorData<T>* val = nullptr) {
    if (val) val->check("Trainer::fit");
    const std::int64_t bpe = source.batches_per_epoch();
    AVGRAD_CHECK(bpe >= 1, "Trainer::fit", "the source has no batches");
    std::int64_t total_micro = o_.epochs * bpe;
    if (o_.max_steps > 0) total_micro = std::min(total_micro, o_.max_steps * o_.accumulate);
    const std::int64_t total_steps = (total_micro + o_.accumulate - 1) / o_.accumulate;
    TrainResult result;
    run_start_ = std::chrono::steady_clock::now();
    running_ = true;
    auto now_cost = [&] { return current_cost(); };
    std::unique_ptr<ProgressBar> bar;
    const std::int64_t first_step = step_;
    if (o_.progress && step_ < total_steps)
      bar = std::make_unique<ProgressBar>(defense_.name(), total_steps - first_step, 0);
    std::int64_t last_eval_step = -1;
    bool stop = false;
    model_.train();
    while (micro_ < total_micro && !stop) {
      const std::int64_t group_epoch = micro_ / bpe;
      std::int64_t in_group = 0;
      // One optimizer step: `accumulate` micro-batches (fewer at the very end).
      for (; in_group < o_.accumulate && micro_ < total_micro; ++in_group) {
        const std::int64_t epoch = micro_ / bpe, index = micro_ % bpe;
        if (index == 0) defense_.on_epoch_start(model_, epoch, step_, cost_);
        if (in_group == 0) defense_.before_step(model_, step_, cost_);
        const auto b = source.batch(epoch, index).template to<D>();
        auto out = defense_.loss(model_, b, gen_, cost_);
        AVGRAD_CHECK(out.loss.defined() && out.loss.numel() == 1, "Trainer", "the defense '", defense_.name(),
                     "' returned no scalar loss");
        const double lv = static_cast<double>(out.loss.detach().template to<Cpu>().item());
        AVGRAD_CHECK(std::isfinite(lv), "Trainer", "non-finite loss ", lv, " at step ", step_, " (epoch ", epoch,
                     ", batch ", index, ", defense '", defense_.name(), "')");
        auto scaled =
            o_.accumulate > 1 ? out.loss * static_cast<T>(1.0 / static_cast<double>(o_.accumulate)) : out.loss;
        scaled.backward();
        cost_.add_backward(b.size());
        cost_.examples_seen += b.size();
        run_loss_ += lv * static_cast<double>(b.size());
        run_hits_ += static_cast<double>(out.correct);
        run_n_ += static_cast<double>(b.size());
        run_pred_ += static_cast<double>(out.predictions);
        ++micro_;
      }
      if (o_.clip_grad_norm > 0) optim::clip_grad_norm_(model_.parameters(), o_.clip_grad_norm);
      opt_.step();
      opt_.zero_grad();
      if (sched_) sched_->step();
      ++step_;
      const bool epoch_ended = micro_ / bpe > group_epoch || micro_ == total_micro;
      const bool do_eval = val && ((o_.eval_every > 0 && step_ % o_.eval_every == 0) ||
                                   (o_.eval_every == 0 && epoch_ended) || micro_ == total_micro);
      const bool do_log = do_eval || (o_.log_every > 0 && step_ % o_.log_every == 0) || (!val && epoch_ended);
      if (do_log) {
        LogRow row;
        row.step = step_;
        row.epoch = static_cast<double>(micro_) / static_cast<double>(bpe);
        row.lr = opt_.group_options(0).lr.value_or(NAN);
        row.train_loss = run_n_ > 0 ? run_loss_ / run_n_ : NAN;
        row.train_accuracy = run_pred_ > 0 ? run_hits_ / run_pred_ : (run_n_ > 0 ? run_hits_ / run_n_ : NAN);
        run_loss_ = run_hits_ = run_n_ = run_pred_ = 0;
        if (do_eval) {
          const auto m = evaluate(model_, *val, o_.eval_batch);
          model_.train();
          row.val_loss = m.loss;
          row.val_accuracy = m.accuracy;
          last_eval_step = step_;
          const double score = o_.monitor_loss ? -m.loss : m.accuracy;
          if (std::isnan(best_) || score > best_) {
            best_ = score;
            best_step_ = step_;
            bad_evals_ = 0;
            if (!o_.checkpoint_dir.empty()) save(o_.checkpoint_dir / "best.safetensors");
          } else if (++bad_evals_ >= o_.patience && o_.patience > 0) {
            stop = true;
            result.stopped_early = true;
          }
        }
        row.cost = now_cost();
        write_logs(row);
        result.history.push_back(row);
        last_row_ = row;
      }
      if (!o_.checkpoint_dir.empty() &&
          (do_eval || (o_.checkpoint_every > 0 && step_ % o_.checkpoint_every == 0) || micro_ == total_micro || stop))
        save(o_.checkpoint_dir / "last.safetensors");
      if (bar)
        bar->update(step_ - first_step,
                    // means since the last log row (that row's own right after it was written)
                    {{"loss", run_n_ > 0 ? run_loss_ / run_n_ : last_row_.train_loss},
                     {"acc", run_pred_ > 0 ? run_hits_ / run_pred_ : last_row_.train_accuracy},
                     {"ex/s", static_cast<double>(cost_.examples_seen) / std::max(1e-9, now_cost().seconds)}});
    }
    (void)last_eval_step;
    cost_ = now_cost();
    running_ = false;
    result.steps = step_;
    result.best_metric = o_.monitor_loss && !std::isnan(best_) ? -best_ : best_;
    result.best_step = best_step_;
    result.cost = cost_;
    return result;
  }

  /// The cost so far (its clock running while fit() runs).
  Cost current_cost() const {
    Cost c = cost_;
    if (running_) c.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - run_start_).count();
    return c;
  }
  const Cost& cost() const { return cost_; }
  std::int64_t step() const { return step_; }
  Generator& generator() { return gen_; }
  const TrainerOptions& options() const { return o_; }

 private:
  void write_logs(const LogRow& r) {
    auto num = [](double v, bool json) -> std::string {
      if (!std::isfinite(v)) return json ? "null" : "";
      char buf[40];
      std::snprintf(buf, sizeof buf, "%.9g", v);
      return buf;
    };
    if (!o_.log_csv.empty()) {
      const bool fresh = !std::filesystem::exists(o_.log_csv) || std::filesystem::file_size(o_.log_csv) == 0;
      std::ofstream f(o_.log_csv, std::ios::app);
      AVGRAD_CHECK(f.good(), "Trainer", "cannot open the CSV log '", o_.log_csv.string(), "'");
      if (fresh)
        f << "step,epoch,lr,train_loss,train_accuracy,val_loss,val_accuracy,seconds,forward_passes,backward_passes,"
             "forward_examples,backward_examples,examples_seen\n";
      f << r.step << ',' << num(r.epoch, false) << ',' << num(r.lr, false) << ',' << num(r.train_loss, false) << ','
        << num(r.train_accuracy, false) << ',' << num(r.val_loss, false) << ',' << num(r.val_accuracy, false) << ','
        << num(r.cost.seconds, false) << ',' << r.cost.forward_passes << ',' << r.cost.backward_passes << ','
        << r.cost.forward_examples << ',' << r.cost.backward_examples << ',' << r.cost.examples_seen << '\n';
    }
    if (!o_.log_jsonl.empty()) {
      std::ofstream f(o_.log_jsonl, std::ios::app);
      AVGRAD_CHECK(f.good(), "Trainer", "cannot open the JSON log '", o_.log_jsonl.string(), "'");
      f << "{\"step\": " << r.step << ", \"epoch\": " << num(r.epoch, true) << ", \"lr\": " << num(r.lr, true)
        << ", \"train_loss\": " << num(r.train_loss, true) << ", \"train_accuracy\": " << num(r.train_accuracy, true)
        << ", \"val_loss\": " << num(r.val_loss, true) << ", \"val_accuracy\": " << num(r.val_accuracy, true)
        << ", \"seconds\": " << num(r.cost.seconds, true) << ", \"forward_passes\": " << r.cost.forward_passes
        << ", \"backward_passes\": " << r.cost.backward_passes << ", \"forward_examples\": " << r.cost.forward_examples
        << ", \"backward_examples\": " << r.cost.backward_examples << ", \"examples_seen\": " << r.cost.examples_seen
        << ", \"defense\": \"" << defense_.name() << "\"}\n";
    }
  }

  M& model_;
  optim::Optimizer<T, D>& opt_;
  Defense<M>& defense_;
  optim::LRScheduler* sched_;
  TrainerOptions o_;
  Generator gen_;
  Cost cost_{};
  std::int64_t step_ = 0, micro_ = 0, best_step_ = -1, bad_evals_ = 0;
  double best_ = NAN;
  double run_loss_ = 0, run_hits_ = 0, run_n_ = 0, run_pred_ = 0;
  LogRow last_row_{};
  std::chrono::steady_clock::time_point run_start_{};
  bool running_ = false;
};

}  // namespace avgrad::train
