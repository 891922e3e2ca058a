"""Code versions that a refactor changed without changing any number, so that records made before
it are still reused. Each entry was written by ``python benchmarks/code_equivalence.py --base REV``,
which runs every method at REV and at the new code on the same generated scenario and lists only the
methods whose records came out bit for bit the same (accuracy matrices, Task-IL, forgetting, memory
in floats, replay judge). An entry counts only while the new code version is the current one: the
next edit of a method's code makes its old records stale again, as any edit does.

{method: {code version before: code version after}}
"""

EQUIVALENT_CODE: dict[str, dict[str, str]] = {'agem': {'9a9009c49ed8ad8f': 'ceb77b44acdd2fff'},
 'ctrl': {'5d099262e53bb445': '505d4896bcc61714'},
 'der': {'49cf970527746d4c': 'ad5cc200b30a7ac1'},
 'ewc': {'aef1888ad9d4ddfc': '34267fcf7fb2c6a7'},
 'fecam': {'cac9c851a7269e2a': 'fd921245230fc54a'},
 'fetril': {'8234c79f76bb826f': '31c3c8ec2f5f9460'},
 'gdumb': {'82eab14a19e750cc': '77e8c71eae6cb1eb'},
 'gem': {'53f9179153fa461b': '93a146339383b1e1'},
 'generative_replay': {'1953e9e5b3a71b77': '574753c4365e1459'},
 'icarl': {'d3ec9e8612e4af90': '2330c9efa7a03a1c'},
 'joint': {'573b1546b015e691': 'b9d5b3b36ef13bce'},
 'lwf': {'741a881373f91c77': '8d0a5b5071503642'},
 'naive': {'0378fdb628c4fabc': '871e7ddd39709f45'},
 'ncm': {'4075f25efb48894c': 'bc82156aceb50e08'},
 'pass': {'e8092a35cad7f4e9': '0a7399ad9daec037'},
 'replay': {'07563f78d66092a8': 'dc7c639084b754fc'},
 'si': {'a3a9c7e9888d475e': '5cc169119bb4b79b'}}
