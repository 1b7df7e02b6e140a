// Cluster's step groups (issue #17): a whole prompt run by k idle netdist workers at once, each as one rank
// of a c10d group that meets through the coordinator's group/kv route (group_kv.h, group_store.h).
#include <algorithm>

#include "cluster/cluster.h"
#include "cluster/cluster_state.h"
#include "cluster/group_plan.h"
#include "cluster/shard_inputs.h"
#include "core/log.h"
#include "server/prompt_cost.h"

namespace netdist::cluster {

namespace {

// 1 / seconds per unit of each member (by rank); empty (equal shares) until every member has a speed.
std::vector<double> group_member_speeds(const std::vector<std::optional<double>>& seconds_per_unit) {
  std::vector<double> speeds;
  for (const std::optional<double>& spu : seconds_per_unit) {
    if (!spu || !(*spu > 0)) return {};
    speeds.push_back(1.0 / *spu);
  }
  return speeds;
}

}  // namespace

void Cluster::set_self_url(const std::string& url) {
  std::lock_guard<std::mutex> lock(mutex_);
  self_url_ = url;
}

Cluster::GroupCandidates Cluster::group_candidates(const Json& prompt) {
  const Requirements req = prompt_requirements(prompt);
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<std::pair<double, const Member*>> idle;
  GroupCandidates out;
  for (const auto& m : members_) {
    if (m->link->in_process() || !m->caps || m->busy || m->draining ||
        !m->link->refuses(protocol::TaskKind::group).empty())
      continue;
    if (!missing_requirements(req, *m->caps).empty()) continue;
    const auto spu = m->cost.seconds_per_unit();
    idle.push_back({spu.value_or(1e30), m.get()});
    if (const auto x = m->exchange.seconds_per_exchange()) out.exchange_s = std::max(out.exchange_s.value_or(0), *x);
  }
  std::stable_sort(idle.begin(), idle.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  for (const auto& [spu, m] : idle) out.urls.push_back(m->url());
  if (!idle.empty() && idle.front().first < 1e30) out.seconds_per_unit = idle.front().first;
  return out;
}

Result<PromptReply> Cluster::run_group(const std::string& prompt_id, const Json& prompt,
                                       const Json& extra_data, const Json& outputs_to_execute,
                                       const std::string& mode, int size, double predicted_s,
                                       const std::function<bool()>& keep_going) {
  if (size < 2) return Status::invalid_argument("a step group needs at least 2 members");
  auto job = std::make_shared<Job>();
  job->kind = protocol::TaskKind::group;
  job->prompt = prompt;
  job->prompt_id = prompt_id;
  job->extra_data = extra_data;
  job->outputs_to_execute = outputs_to_execute;
  job->requirements = prompt_requirements(prompt);
  job->predicted_s = predicted_s;
  ND_ASSIGN_OR_RETURN(job->inputs, collect_shard_inputs(prompt, options_.input_dir));
  const GroupCandidates picked = group_candidates(prompt);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopping_) return Status::unavailable("the coordinator is stopping");
    for (const std::string& url : picked.urls) {
      for (const auto& m : members_) {
        if (m->url() == url && !m->busy && m->caps && int(job->group_members.size()) < size)
          job->group_members.push_back(m.get());
      }
    }
    if (int(job->group_members.size()) < size)
      return Status::unavailable("only " + std::to_string(job->group_members.size()) +
                                 " idle worker(s) can join a step group of " + std::to_string(size));
    job->id = "job" + std::to_string(++next_job_);
    job->group = protocol::GroupSpec{"g-" + job->id + "-" + prompt_id, 0, size, mode, self_url_,
                                     options_.group_timeout.count(),   {}, {}};
    std::vector<std::optional<double>> spus;
    for (const Member* m : job->group_members) {
      job->group.names.push_back(m->url());
      spus.push_back(m->cost.seconds_per_unit());
    }
    job->group.speeds = group_member_speeds(spus);
    job->results.resize(size_t(size));
    job->attempts.assign(size_t(size), 0);
    group_kv_.open(job->group.group_id);
    // Each member computes about 1/size of the prompt's sampling: its share is what its seconds measure.
    const double units = server::predict_prompt_units(prompt) / double(size);
    for (int r = 0; r < size; ++r) queue_.push_back(Task{job, size_t(r), 0, 1, units});
  }
  log::info("cluster: prompt {} runs as step group {} ({}) on {}", prompt_id, job->group.group_id, mode, [&] {
    std::string s;
    for (const auto& n : job->group.names) s += (s.empty() ? "" : ", ") + n;
    return s;
  }());
  cv_.notify_all();
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    if (!job->failure.is_ok()) break;
    if (job->reply && job->running.empty()) break;
    // A picked member that died before it took its rank leaves the others waiting for it: fail now.
    for (size_t r = 0; r < job->group_members.size() && job->failure.is_ok(); ++r) {
      const bool queued = std::any_of(queue_.begin(), queue_.end(),
                                      [&](const Task& t) { return t.job == job && t.shard == r; });
      if (queued && !job->group_members[r]->caps)
        job->failure =
            Status::unavailable("step group " + job->group.group_id + ": rank " + std::to_string(r) + " (" +
                                job->group.names[r] + ") is gone before it joined");
    }
    if (!job->failure.is_ok()) break;
    lock.unlock();
    const bool go_on = keep_going();
    lock.lock();
    if (!go_on) break;
    cv_.wait_for(lock, std::chrono::milliseconds(100));
  }
  group_kv_.close(job->group.group_id);  // the group is torn down: its keys are gone, a late joiner gets 404
  if (job->reply && job->failure.is_ok()) {
    std::erase_if(queue_, [&](const Task& t) { return t.job == job; });
    PromptReply reply = std::move(*job->reply);
    reply.plan = plan_to_json(group_plan_record(job->group, job->predicted_s));
    return reply;
  }
  abandon(lock, job);
  if (!job->failure.is_ok()) return job->failure;
  return Status::cancelled("interrupted");
}

}  // namespace netdist::cluster
