r"""Knowledge distillation with a temperature and a direction.

The teacher is the reference p, the student the model q (math order, as everywhere in
kllab). Hinton et al. (2015) soften both with a temperature T and multiply the KL by T²:
the gradient of :math:`\mathrm{KL}(p_T \| q_T)` with respect to the student's logits is
:math:`(q_T - p_T)/T`, whose size falls like :math:`1/T^2` at high T, and the T² factor
keeps the soft loss on the same scale as a hard-label loss whatever T is.

Sections, in order:

* the KD loss and its gradient (:func:`kd_loss`, :func:`kd_gradient`);
* clipping the teacher to its head: the bucketed KL, a lower bound of the KL by the data processing
  inequality (:func:`teacher_head`, :func:`bucket_kl`, :func:`truncated_kl`, :func:`bucket_kd_loss`,
  :func:`fit_low_rank_student`; MGSR's DAC-KL, arXiv:2407.10068);
* balancing forward and reverse KL by the teacher-student entropy gap, in online distillation
  (:func:`entropy_balance_weight`, :func:`balanced_kd_loss`, :func:`train_teacher`,
  :func:`distill_students`; BD-KD, arXiv:2212.12965);
* weighting problems by the student's pass rate (:func:`pass_rate_weight`,
  :func:`pass_rate_weight_mode`, :func:`estimated_pass_rate_weight`; PACED, arXiv:2603.11178). The
  signal-to-noise side of that argument is in :mod:`kllab.maths.curriculum`, calibration in
  :mod:`kllab.maths.calibration`.
"""

from .balancing import entropy_balance_weight, balanced_kd_loss, ONLINE_LOSSES, TeacherTrajectory, train_teacher, distill_students
from .clipping import teacher_head, bucket_kl, truncated_kl, bucket_kd_loss, STUDENT_LOSSES, fit_low_rank_student
from .kd import KD_DIRECTIONS, kd_loss, kd_gradient
from .pacing import pass_rate_weight, pass_rate_weight_mode, estimated_pass_rate_weight

__all__ = ["KD_DIRECTIONS", "kd_loss", "kd_gradient", "teacher_head", "bucket_kl", "truncated_kl", "bucket_kd_loss", "STUDENT_LOSSES", "fit_low_rank_student", "entropy_balance_weight", "balanced_kd_loss", "ONLINE_LOSSES", "TeacherTrajectory", "train_teacher", "distill_students", "pass_rate_weight", "pass_rate_weight_mode", "estimated_pass_rate_weight"]
