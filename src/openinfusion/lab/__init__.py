"""Virtual verification: IEC 60601-2-24 tests run on the pump core with simulated hardware.

* :mod:`~openinfusion.lab.trumpet`: the trumpet-curve analysis (pure numpy functions);
* :mod:`~openinfusion.lab.rig`: the test bench (one channel, an open outlet on a balance);
* :mod:`~openinfusion.lab.accuracy`: the 2 h flow accuracy test (start-up and trumpet curves);
* :mod:`~openinfusion.lab.occlusion`: time to downstream occlusion alarm, back-off and release bolus;
* :mod:`~openinfusion.lab.report`: JSON, HTML and PNG outputs.

The method, the results and their discussion are in docs/verification.md.
"""
