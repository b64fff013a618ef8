#include "vision/nms.h"

#include <algorithm>
#include <unordered_map>

namespace ramjet::vision {

float iou(const Detection& a, const Detection& b) {
  float iw = std::min(a.x2, b.x2) - std::max(a.x1, b.x1);
  float ih = std::min(a.y2, b.y2) - std::max(a.y1, b.y1);
  if (iw <= 0 || ih <= 0) return 0.f;
  float inter = iw * ih;
  float ua = std::max(0.f, a.x2 - a.x1) * std::max(0.f, a.y2 - a.y1) +
             std::max(0.f, b.x2 - b.x1) * std::max(0.f, b.y2 - b.y1) - inter;
  return ua > 0 ? inter / ua : 0.f;
}

std::vector<Detection> nms(std::vector<Detection> boxes, const NmsOptions& opt) {
  // Stable sort: equal scores keep input order, so results do not depend on the sort library.
  std::stable_sort(boxes.begin(), boxes.end(),
                   [](const Detection& a, const Detection& b) { return a.score > b.score; });
  std::vector<Detection> kept;
  // Kept boxes grouped by class: a candidate is only compared with kept boxes it can suppress.
  std::unordered_map<int, std::vector<size_t>> by_class;
  std::vector<size_t> all;
  for (const Detection& d : boxes) {
    if (opt.max_detections > 0 && kept.size() >= size_t(opt.max_detections)) break;
    const std::vector<size_t>* rivals = &all;
    if (!opt.agnostic) rivals = &by_class[d.cls];
    bool suppressed = false;
    for (size_t k : *rivals)
      if (iou(kept[k], d) > opt.iou_threshold) {
        suppressed = true;
        break;
      }
    if (suppressed) continue;
    if (opt.agnostic)
      all.push_back(kept.size());
    else
      by_class[d.cls].push_back(kept.size());
    kept.push_back(d);
  }
  return kept;
}

std::vector<std::vector<Detection>> batchedNms(std::vector<std::vector<Detection>> per_image,
                                               const NmsOptions& opt) {
  for (auto& v : per_image) v = nms(std::move(v), opt);
  return per_image;
}

}  // namespace ramjet::vision
