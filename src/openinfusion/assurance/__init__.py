"""The safety assurance case as a model: GSN generated from safety/, the trace, tests and campaigns; SysML v2 and
ReqIF exports of hazards, controls and requirements (docs/assurance.md). Layer: above ``lab`` (it reads the
campaign results and the trace), below ``cli`` (docs/decisions/0025-campaign-assurance-layer.md)."""
