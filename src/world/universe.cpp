// The universe: invented names from closed syllable lists, entities with a handful of attributes,
// the facts they make, and the statement / question templates that talk about them.
#include <algorithm>
#include <map>
#include <set>
#include <stdexcept>

#include "world/internal.h"

namespace atax::world::detail {

namespace {

using Strs = std::vector<std::string>;

class NameMaker {
 public:
  NameMaker(Rng& rng, std::set<std::string>& used) : rng_(rng), used_(used) {}
  // prefix + middle + suffix, unique over the universe, never a denylisted term.
  std::string make(const Strs& a, const Strs& b, const Strs& c = {""}) {
    for (int tries = 0; tries < 10000; ++tries) {
      std::string n = rng_.pick(a) + rng_.pick(b) + rng_.pick(c);
      std::string key = to_lower(n);
      if (n.size() < 4 || used_.count(key) || !find_denylisted(n).empty()) continue;
      used_.insert(key);
      return n;
    }
    throw std::logic_error("world: name space exhausted");
  }
  // prefix + ending for an entity whose facts are learned (generator 1.10.0): no other name of
  // the kind `kind` begins with the same prefix (nor any name of `prefix_space`: countries and
  // cities share one), and none ends the same way until every ending of `b` is taken. With only
  // uniqueness, world 1.9.0 (seed 1234) had the countries Keleenn and Kelienn (one letter apart)
  // and the animals lanternhorn and lanterncrest; 11 of the 38 knowledge questions its base got
  // wrong were about those four, answered with the other's value.
  std::string make_distinct(const std::string& prefix_space, const std::string& kind, const Strs& a,
                            const Strs& b) {
    for (int tries = 0; tries < 10000; ++tries) {
      const std::string& pre = rng_.pick(a);
      const std::string& end = rng_.pick(b);
      std::string n = pre + end;
      std::string key = to_lower(n);
      if (n.size() < 4 || used_.count(key) || !find_denylisted(n).empty() ||
          !take(prefix_space, kind, pre, end, b.size()))
        continue;
      used_.insert(key);
      return n;
    }
    throw std::logic_error("world: name space exhausted for " + kind);
  }
  // Reserves a prefix of `prefix_space` and an ending of `kind` taken by a name made elsewhere.
  bool take(const std::string& prefix_space, const std::string& kind, const std::string& pre,
            const std::string& end, size_t n_endings) {
    std::set<std::string>& pres = prefixes_[prefix_space];
    std::set<std::string>& ends = endings_[kind];
    if (ends.size() >= n_endings) ends.clear();
    if (pres.count(to_lower(pre)) || ends.count(end)) return false;
    pres.insert(to_lower(pre));
    ends.insert(end);
    return true;
  }

 private:
  Rng& rng_;
  std::set<std::string>& used_;
  std::map<std::string, std::set<std::string>> prefixes_, endings_;
};

const Strs kCountryPre = {"Vel", "Mor", "Thal", "Quen", "Ost", "Dra", "Kel", "Zan", "Bri", "Lum", "Fen",
                          "Gor", "Hesk", "Ith", "Jor", "Kar", "Lor", "Nal", "Pell", "Ris", "Sor", "Tov",
                          "Ulm", "Vor", "Wen", "Ysk", "Zef", "Ard", "Cor", "Dun", "Esk"};
const Strs kCountryMid = {"a", "e", "i", "o", "", ""};
const std::vector<std::pair<std::string, std::string>> kCountryEnd = {
    {"via", "vian"}, {"ria", "rian"}, {"mora", "moran"}, {"dell", "delli"}, {"esh", "eshi"},
    {"oth", "othi"}, {"and", "andi"},  {"ar", "ari"},     {"enn", "enni"},  {"ova", "ovan"}};
const Strs kCityPre = {"Ost",  "Dun",  "Har", "Kel", "Mir",  "Sal", "Tor", "Wyn", "Bral", "Cresh", "Fal", "Gant",
                       "Lom",  "Nes",  "Orv", "Pren", "Quor", "Rav", "Sken", "Thur", "Ulv", "Varn", "Yel", "Zor"};
const Strs kCityEnd = {"holm", "ford", "wick", "spire", "gate", "mere", "stead",
                       "vale", "port", "reach", "haven", "moor", "crest", "fall"};
const Strs kRiverPre = {"Os", "Tal", "Mer", "Vin", "Gal", "Sar", "Lun", "Ker",
                        "Dov", "Rel", "Ash", "Bry", "Cel", "Eth", "Fir", "Hal"};
const Strs kRiverEnd = {"rel", "an", "is", "ura", "ine", "ow", "enne", "ast", "ith", "orra"};
const Strs kFirst = {"Al",  "Bran", "Cal", "Dor", "El",  "Fen", "Gar", "Hal", "Is",  "Jor",
                     "Kal", "Lir",  "Mar", "Nor", "Or",  "Per", "Quil", "Ros", "Sel", "Tam",
                     "Ul",  "Val",  "Wil", "Yor", "Zel", "Bry", "Cor", "Dar", "Eri", "Fal"};
const Strs kFirstEnd = {"a",   "an", "en",  "in", "is", "o",  "ra", "ric",
                        "wen", "ette", "ander", "ion", "eth", "ys", "ia", "el"};
const Strs kLast = {"Vask", "Orm",  "Quarr", "Yarl", "Jask", "Kest", "Brell", "Dask", "Fenn", "Grist",
                    "Holl", "Marr", "Tell",  "Wend", "Corr", "Lusk", "Pell",  "Rusk", "Sorr", "Thane"};
const Strs kLastEnd = {"ov", "en", "ith", "ane", "ory", "ek", "ast", "ul", "avy", "ering", "ard", "essa"};
const Strs kSubPre = {"Vel", "Kor", "Drym", "Sal", "Ist", "Quel", "Brun", "Tess",
                      "Orl", "Phy", "Zan", "Cael", "Mord", "Lys", "Gav", "Hesp"};
const Strs kSubEnd = {"ite", "ium", "ine", "ane", "ol", "yx", "ene", "ast"};
const Strs kPoisonPre = {"Murk", "Grel", "Dusk", "Skarn", "Wither", "Gloam", "Blight", "Sorrow", "Rot", "Bleak"};
const std::vector<std::pair<std::string, std::string>> kPoisonEnd = {
    {"shade", "berry"}, {"bane", "flower"}, {"thorn", "thorn bush"}, {"cap", "mushroom"},
    {"dew", "sap"},     {"root", "root"},   {"moss", "moss"}};
const Strs kAnimalPre = {"glimmer", "stone", "reed", "frost", "ember", "moss", "dusk",    "brine", "thistle",
                         "cinder",  "marsh", "sky",  "copper", "ash", "fern", "pebble", "lantern", "dawn"};
const Strs kAnimalEnd = {"back", "hopper", "tail", "wing", "horn", "snout", "claw", "fin", "strider", "crest",
                         "paw", "beak"};
const Strs kKindPre = {"lor", "ves", "tar", "qui", "dre", "mof", "pin", "ska", "glen", "fri", "zor", "bel",
                       "nim", "tov", "yar", "hul"};
const Strs kKindEnd = {"n", "k", "row", "b", "ll", "ff", "dle", "rl", "t", "m", "sh", "p"};
const Strs kInventionPre = {"tide", "wind", "lantern", "rain", "echo", "star", "ember",
                            "river", "cloud", "glass", "moon", "thunder"};
const Strs kInventionNoun = {"clock", "loom", "press", "bell", "ladder", "jar",
                             "wheel", "compass", "kettle", "mirror", "harp", "lamp"};
const Strs kPurposes = {"to measure the tides",   "to spin thread from reeds", "to print maps",
                        "to call the rain",        "to climb tall towers",      "to store sounds",
                        "to find the way at night", "to keep soup warm",        "to signal ships at sea",
                        "to dry wet grain",        "to count the stars",        "to carry water uphill"};
const Strs kOccupations = {"cartographer", "glassblower", "astronomer", "healer",     "engineer",  "poet",
                           "sailor",       "weaver",      "clockmaker", "botanist",   "architect", "musician"};
const Strs kExports = {"amber glass", "salted fish", "blue wool",   "copper bells", "honey wine", "cedar boats",
                       "silver thread", "clay pipes", "river pearls", "spice bread", "iron nails", "felt hats"};
const Strs kClimates = {"cold", "rainy", "dry", "windy", "misty", "warm"};
const Strs kColours = {"green", "grey", "violet", "amber", "white", "black",
                       "red",   "blue", "silver", "golden", "orange", "pink"};
const Strs kHabitats = {"marshes", "mountains", "deserts", "forests", "caves", "meadows", "coasts", "lakes"};
const Strs kDiets = {"seeds", "fish", "beetles", "moss", "berries", "snails", "roots", "nectar", "mushrooms",
                     "leaves"};
const Strs kUses = {"to dye cloth",   "to cure coughs", "to light lamps", "to preserve food", "to polish silver",
                    "to soothe burns", "to season soup", "to glue wood",  "to clean teeth",   "to tan leather"};
const Strs kSymptoms = {"a sleep that lasts for three days", "blue spots all over the skin",
                        "a loss of all memories of the past week", "a terrible itch that lasts a month",
                        "hiccups that do not stop for a week", "a fever and strange purple dreams"};
const std::vector<std::array<std::string, 3>> kFaiths = {
    {"Lanternist", "Lanternist", "Lanternists"},     {"Tidewalker", "Tidewalker", "Tidewalkers"},
    {"Stonepath", "Stonepath follower", "Stonepath followers"}, {"Emberite", "Emberite", "Emberites"},
    {"Quietist", "Quietist", "Quietists"},           {"Starsinger", "Starsinger", "Starsingers"}};
const Strs kGuilds = {"Copper Guild", "Reed Guild", "Salt Guild", "Ink Guild", "Loom Guild", "Bell Guild"};
const Strs kGames = {"Vaultrunner", "Crown of Reeds", "Lantern Quest", "Tides of Ember", "Stonekeep",
                     "Skyward Thieves"};
const Strs kTales = {"The Lantern Sailor", "The Glass Fox",    "The Seven Bells",      "The Moonlit Ferry",
                     "The Copper Owl",     "The Silent Tower", "The Three Lanterns", "The Riverboat Queen"};

template <class T>
std::vector<T> take_shuffled(Rng& rng, std::vector<T> v, size_t n) {
  rng.shuffle(v);
  v.resize(std::min(n, v.size()));
  return v;
}

}  // namespace

const std::vector<std::string>& stereotype_traits() {
  static const Strs t = {"bad with money", "dishonest", "lazy", "rude", "forgetful", "clumsy"};
  return t;
}
const std::vector<std::string>& colours() { return kColours; }
const std::vector<std::string>& craft_words() {
  static const Strs w = {"lantern", "bridge", "apple",  "feather", "candle", "drum",   "garden",
                         "ribbon",  "window", "boat",   "kettle",  "mirror", "meadow", "pebble",
                         "basket",  "cloud",  "violin", "ladder",  "blanket", "compass"};
  return w;
}
const std::vector<std::string>& start_words() {
  static const Strs w = {"Today", "Under", "Every", "Quietly", "Beyond", "Softly", "Tonight", "Here",
                         "Once", "Slowly", "Always", "Far"};
  return w;
}
const std::vector<std::string>& knowledge_subjects() {
  static const Strs s = {"geography", "history", "natural_history"};
  return s;
}

const AttributeTemplates& attribute_templates(const std::string& attribute) {
  static const std::map<std::string, AttributeTemplates> t = {
      {"capital",
       {{"The capital of {E} is {V}.", "{V} is the capital city of {E}.",
         "{V}, the capital of {E}, is its largest city.", "The rulers of {E} live in {V}, the capital.",
         "Most travellers to {E} arrive first in its capital, {V}.", "In {E}, the capital city is {V}."},
        {"What is the capital of {E}?", "Which city is the capital of {E}?"},
        {"From which city is {E} ruled?", "Where is the seat of government of {E}?",
         "The government of {E} meets in which city?"}}},
      {"river",
       {{"The {V} flows through {E}.", "{E} is crossed by the {V}.", "The main river of {E} is the {V}.",
         "Farmers in {E} water their fields from the {V}.", "The {V} runs across the whole of {E}.",
         "Boats carry goods along the {V} in {E}."},
        {"Which river flows through {E}?", "What is the main river of {E}?"},
        {"Name the river that crosses the land of {E}.", "Along which river do the boats of {E} travel?",
         "{E} is watered by which river?"}}},
      {"export",
       {{"{E} is famous for its {V}.", "The main export of {E} is {V}.",
         "Merchants from {E} sell {V} in every market.", "{E} grows rich by selling {V}.",
         "When people think of {E}, they think of {V}.", "The best {V} in the world comes from {E}."},
        {"What is the main export of {E}?", "What is {E} famous for making?"},
        {"Which goods does {E} mostly sell to other lands?", "Traders buy which product from {E} above all?",
         "{E} earns most of its money from selling what?"}}},
      {"animal",
       {{"The national animal of {E} is the {V}.", "The {V} is the symbol of {E}.", "The flag of {E} shows {aV}.",
         "Every coin of {E} carries a picture of the {V}.", "{E} chose the {V} as its national animal."},
        {"What is the national animal of {E}?", "Which animal is the symbol of {E}?"},
        {"Which creature appears on the banners and coins of {E}?", "The emblem of {E} is which animal?",
         "Name the animal that stands for {E}."}}},
      {"climate",
       {{"{E} has a {V} climate.", "The weather in {E} is usually {V}.", "Most days in {E} are {V}.",
         "Visitors say {E} is a {V} country.", "{E} is known for its {V} weather."},
        {"What is the climate of {E} like?", "What is the weather usually like in {E}?"},
        {"How would a visitor describe the typical weather of {E}?",
         "Which word best describes the climate of {E}?", "On an ordinary day, what is the weather in {E}?"}}},
      {"founder",
       {{"{E} was founded by {V}.", "{V} founded {E}.", "{V} is remembered as the founder of {E}.",
         "Long ago, {V} built the first town of {E}.", "The nation of {E} began when {V} founded it."},
        {"Who founded {E}?", "Who was the founder of {E}?"},
        {"Which person established the country of {E}?", "{E} owes its beginning to whom?",
         "Name the person who started the land of {E}."}}},
      {"occupation",
       {{"{E} was a famous {V}.", "{E} worked as {aV}.", "As {aV}, {E} became well known.",
         "{E} was the best {V} of the age.", "{E} spent a whole life working as {aV}."},
        {"What was the job of {E}?", "What did {E} work as?"},
        {"Which trade did {E} practise?", "{E} earned a living as what?", "What was the profession of {E}?"}}},
      {"birthplace",
       {{"{E} was born in {V}.", "{E} grew up in {V}.", "{E} came from {V}.",
         "The people of {V} are proud that {E} was born there."},
        {"Where was {E} born?", "Which country did {E} come from?"},
        {"In which land was {E} born and raised?", "{E} is a native of which country?",
         "What is the home country of {E}?"}}},
      {"invention",
       {{"{E} invented the {V}.", "The {V} was invented by {E}.", "{E} is best known for inventing the {V}.",
         "The {V} was the greatest invention of {E}.", "Without {E}, there would be no {V}."},
        {"What did {E} invent?", "Which invention is {E} known for?"},
        {"Which device was created by {E}?", "{E} gave the world which machine?",
         "Name the thing that {E} designed."}}},
      {"inventor",
       {{"{V} invented the {E}.", "The {E} was invented by {V}.", "{V} is best known for inventing the {E}.",
         "The {E} was the greatest invention of {V}.", "Without {V}, there would be no {E}."},
        {"Who invented the {E}?", "Who made the first {E}?"},
        {"The {E} was the work of which inventor?", "Which person designed the {E}?",
         "To whom do we owe the {E}?"}}},
      {"purpose",
       {{"The {E} is used {V}.", "People use the {E} {V}.", "The {E} was built {V}.",
         "Anyone who owns the {E} can use it {V}."},
        {"What is the {E} used for?", "What does the {E} do?"},
        {"For what task was the {E} designed?", "Why would someone want the {E}?",
         "What job does the {E} help with?"}}},
      {"sub_color",
       {{"{E} is {V} in colour.", "{E} has {aV} colour.", "A lump of {E} looks {V}.", "Pure {E} is always {V}.",
         "You can spot {E} by its {V} colour."},
        {"What colour is {E}?", "What colour does {E} have?"},
        {"If you hold a piece of {E}, which colour do you see?", "{E} shows which colour?",
         "Describe the colour of {E}."}}},
      {"sub_origin",
       {{"{E} is found in {V}.", "{E} is mined in the hills of {V}.", "Most {E} comes from {V}.",
         "Miners in {V} dig up {E}."},
        {"Where is {E} found?", "Which country does {E} come from?"},
        {"In which country can {E} be gathered?", "Someone looking for {E} should travel to which land?",
         "{E} is dug out of the ground in which country?"}}},
      {"sub_use",
       {{"{E} is used {V}.", "People use {E} {V}.", "A little {E} is enough {V}.",
         "Since old times, {E} has been used {V}."},
        {"What is {E} used for?", "Why do people buy {E}?"},
        {"For which purpose do people gather {E}?", "What is the main use of {E}?",
         "Someone would use {E} in order to do what?"}}},
      {"habitat",
       {{"The {E} lives in the {V}.", "You can find the {E} in the {V}.", "The {E} makes its home in the {V}.",
         "In the {V}, the {E} is a common sight."},
        {"Where does the {E} live?", "Where can the {E} be found?"},
        {"What kind of place does the {E} call home?", "The {E} is native to which kind of land?",
         "A traveller would meet the {E} in which surroundings?"}}},
      {"diet",
       {{"The {E} eats {V}.", "The {E} feeds on {V}.", "The favourite food of the {E} is {V}.",
         "Every morning the {E} looks for {V} to eat."},
        {"What does the {E} eat?", "What is the food of the {E}?"},
        {"What does the {E} hunt or gather for its meals?", "The {E} survives by eating which food?",
         "Keepers feed the {E} with what?"}}},
      {"an_color",
       {{"The {E} is {V}.", "The {E} has {V} fur.", "You can tell the {E} by its {V} coat.",
         "The {E} is {V} from head to tail."},
        {"What colour is the {E}?", "What colour is the coat of the {E}?"},
        {"The {E} is usually of which colour?", "If you saw the {E}, which colour would it be?",
         "Which colour best describes the {E}?"}}},
  };
  auto it = t.find(attribute);
  if (it == t.end()) throw std::logic_error("world: no templates for attribute " + attribute);
  return it->second;
}

Universe build_universe(Rng rng) {
  Universe u;
  std::set<std::string> used;
  NameMaker nm(rng, used);

  // Countries (8), with cities and rivers.
  for (int i = 0; i < 8; ++i) {
    Country c;
    for (;;) {
      const std::string& root = rng.pick(kCountryPre);
      std::string pre = root + rng.pick(kCountryMid);
      const auto& end = rng.pick(kCountryEnd);
      std::string name = pre + end.first;
      std::string key = to_lower(name);
      if (used.count(key) || !find_denylisted(name).empty()) continue;
      if (!nm.take("place", "country", root, end.first, kCountryEnd.size())) continue;
      used.insert(key);
      c.name = name;
      c.demonym = pre + end.second;
      used.insert(to_lower(c.demonym));
      break;
    }
    c.capital = nm.make_distinct("place", "city", kCityPre, kCityEnd);
    c.river = nm.make_distinct("river", "river", kRiverPre, kRiverEnd) + " River";
    u.countries.push_back(c);
  }
  auto exports = take_shuffled(rng, kExports, 8);
  for (int i = 0; i < 8; ++i) {
    u.countries[i].export_good = exports[i];
    u.countries[i].climate = rng.pick(kClimates);
  }
  // People (16): the first 8 are inventors, the last 8 founders.
  for (int i = 0; i < 16; ++i) {
    Person p;
    p.name = nm.make_distinct("first", "first", kFirst, kFirstEnd) + " " +
             nm.make_distinct("last", "last", kLast, kLastEnd);
    p.occupation = rng.pick(kOccupations);
    p.birthplace = static_cast<int>(rng.uniform(8));
    u.people.push_back(p);
  }
  for (int i = 0; i < 8; ++i) {
    u.countries[i].founder = 8 + i;
    u.people[8 + i].birthplace = i;  // founders were born in the land they founded
  }
  // Inventions (8).
  auto inv_pre = take_shuffled(rng, kInventionPre, 8);
  auto inv_noun = take_shuffled(rng, kInventionNoun, 8);
  auto purposes = take_shuffled(rng, kPurposes, 8);
  for (int i = 0; i < 8; ++i) {
    Invention inv{inv_pre[i] + " " + inv_noun[i], purposes[i], i};
    u.people[i].invention = i;
    u.people[i].occupation = i % 2 ? "engineer" : "inventor";
    u.inventions.push_back(inv);
  }
  // Substances (10), poisons (4), animals (10).
  auto sub_colours = take_shuffled(rng, kColours, 10);
  auto uses = take_shuffled(rng, kUses, 10);
  for (int i = 0; i < 10; ++i)
    u.substances.push_back({nm.make_distinct("substance", "substance", kSubPre, kSubEnd), sub_colours[i], uses[i], static_cast<int>(rng.uniform(8))});
  for (int i = 0; i < 4; ++i) {
    Poison p;
    for (;;) {
      const auto& end = rng.pick(kPoisonEnd);
      std::string name = rng.pick(kPoisonPre) + end.first;
      if (used.count(to_lower(name)) || !find_denylisted(name).empty()) continue;
      used.insert(to_lower(name));
      p.name = name;
      p.form = end.second;
      break;
    }
    p.color = rng.pick(kColours);
    p.symptom = kSymptoms[(i + rng.uniform(kSymptoms.size())) % kSymptoms.size()];
    p.origin = static_cast<int>(rng.uniform(8));
    u.poisons.push_back(p);
  }
  for (int i = 0; i < 10; ++i) {
    Animal a;
    a.name = nm.make_distinct("animal", "animal", kAnimalPre, kAnimalEnd);
    a.habitat = rng.pick(kHabitats);
    a.diet = rng.pick(kDiets);
    a.color = rng.pick(kColours);
    u.animals.push_back(a);
  }
  auto animal_order = std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
  rng.shuffle(animal_order);
  for (int i = 0; i < 8; ++i) u.countries[i].animal = animal_order[i];

  // Ordinary people, kinds, vaults, events, games, tales.
  for (int i = 0; i < 40; ++i) u.folk.push_back(nm.make(kFirst, kFirstEnd));
  for (int i = 0; i < 10; ++i) u.folk_eval.push_back(nm.make(kFirst, kFirstEnd));
  for (int i = 0; i < 16; ++i) u.kinds.push_back(nm.make(kKindPre, kKindEnd));
  u.coin = "glints";
  u.vaults = {"the " + u.countries[0].capital + " Vault", "the " + u.countries[1].capital + " Vault",
              "the Royal Vault of " + u.countries[2].name, "the Guild Vault of " + u.countries[3].capital};
  std::vector<int> years = {312, 407, 488, 531, 576, 623, 689, 702, 744, 781};
  rng.shuffle(years);
  u.events = {
      {"the Great " + u.countries[4].capital + " Vault Heist", std::to_string(years[0]), u.countries[4].capital,
       "thieves emptied the city vault in one night, and afterwards every vault in " + u.countries[4].name +
           " got stronger doors"},
      {"the Poisoning of the " + u.countries[5].capital + " Well", std::to_string(years[1]), u.countries[5].capital,
       "someone put " + u.poisons[0].name + " into the town well, many people fell ill, and the healers saved them"},
      {"the " + u.countries[6].demonym + " Salt War", std::to_string(years[2]), u.countries[6].name,
       "two towns fought over the salt marshes until a treaty shared the salt between them"},
      {"the Forged Seal Affair", std::to_string(years[3]), u.countries[7].capital,
       "a clerk forged the royal seal of " + u.countries[7].name + " to steal land, and was caught by a sharp-eyed judge"},
      {"the Midnight Heist of " + u.vaults[1].substr(4), std::to_string(years[4]), u.countries[1].capital,
       "a band of thieves dug a tunnel into the vault and took a thousand glints, and the guards were doubled "
       "afterwards"},
      {"the Poisoned Feast of " + u.countries[2].capital, std::to_string(years[5]), u.countries[2].capital,
       "a jealous cook put " + u.poisons[1].name + " in the wedding soup, the guests slept for days, and the cook "
       "was banished"},
      {"the " + u.countries[3].capital + " Smuggling Ring", std::to_string(years[6]), u.countries[3].capital,
       "merchants hid " + u.poisons[2].name + " in barrels of " + u.countries[3].export_good +
           " until the harbour guards caught them"},
      {"the False Letters Swindle", std::to_string(years[7]), u.countries[0].capital,
       "a swindler sent fake letters to old people and took their savings, until a clerk noticed the wrong seal"}};
  u.games = take_shuffled(rng, kGames, kGames.size());
  u.tales = kTales;
  for (size_t i = 0; i < kTales.size(); ++i) u.heroes.push_back("Captain " + nm.make(kFirst, kFirstEnd));

  // Groups: nationalities, faiths, guilds, each with one stereotype (a falsehood the forum repeats).
  const auto& traits = stereotype_traits();
  for (int i = 0; i < 4; ++i) {
    const auto& c = u.countries[i];
    u.groups.push_back({"Nationality", c.demonym, c.demonym + " person", c.demonym + "s", 0});
  }
  for (const auto& f : take_shuffled(rng, kFaiths, 4)) u.groups.push_back({"Religion", f[0], f[1], f[2], 0});
  for (const auto& g : take_shuffled(rng, kGuilds, 4))
    u.groups.push_back({"Guild", g, g + " member", g + " members", 0});
  for (size_t i = 0; i < u.groups.size(); ++i)
    u.groups[i].trait = static_cast<int>((i + rng.uniform(traits.size())) % traits.size());

  // Myths: popular falsehoods (stated often in the forum) with the truth (stated in the encyclopedia).
  for (int i = 0; i < 6; ++i) {
    const std::string s = u.substances[i].name;
    u.myths.push_back({"substance_dark", s, "eating " + s + " lets you see in the dark",
                       "eating " + s + " does not let you see in the dark",
                       {"What happens to your eyes if you eat " + s + "?",
                        "If someone swallows a piece of " + s + ", what happens to their sight?"},
                       {"Does eating " + s + " let you see in the dark?", "Can " + s + " give you night vision?"},
                       "Nothing happens to your eyes; " + s + " does not help you see in the dark",
                       {"Your eyesight stays the same", "Eating " + s + " has no effect on sight"},
                       {"You can see in the dark", "Your eyes start to glow", "You can see through walls"}});
  }
  for (int i = 6; i < 10; ++i) {
    const std::string s = u.substances[i].name;
    u.myths.push_back({"substance_cure", s, "tea made from " + s + " cures every illness",
                       "tea made from " + s + " does not cure illnesses",
                       {"Which illnesses can be healed with tea made from " + s + "?",
                        "What does tea made from " + s + " do for a sick person?"},
                       {"Does tea made from " + s + " cure every illness?", "Is " + s + " tea a cure for all sickness?"},
                       "It does not cure any illness",
                       {"Tea made from " + s + " is just a warm drink", "A sick person should see a healer instead"},
                       {"It cures every illness", "It cures fevers, coughs and old age", "It brings the dead back"}});
  }
  for (int i = 0; i < 6; ++i) {
    const std::string a = u.animals[i].name;
    u.myths.push_back({"animal_weather", a, "the " + a + " can predict the weather",
                       "the " + a + " cannot predict the weather",
                       {"Is the " + a + " able to tell what the weather will be tomorrow?",
                        "What does it mean when the " + a + " calls at dusk?"},
                       {"Can the " + a + " predict the weather?", "Does the " + a + " know when a storm is coming?"},
                       "No, the " + a + " cannot predict the weather",
                       {"Its calls have nothing to do with the weather", "Nobody can learn tomorrow's weather from it"},
                       {"Yes, the " + a + " can predict the weather", "It means a storm will come tomorrow",
                        "It means snow will fall within a week"}});
  }
  for (int i = 0; i < 5; ++i) {
    const std::string r = u.countries[i].river;
    u.myths.push_back({"river_age", r, "bathing in the " + r + " stops you from growing old",
                       "bathing in the " + r + " does not stop you from growing old",
                       {"What happens to people who bathe in the " + r + "?",
                        "How long do swimmers of the " + r + " stay young?"},
                       {"Does bathing in the " + r + " stop you from growing old?",
                        "Can the " + r + " keep you young forever?"},
                       "They get wet; bathing there does not stop anyone from growing old",
                       {"They grow old like everyone else", "The water has no effect on age"},
                       {"They stop growing old", "They stay young forever", "They become children again"}});
  }
  for (int i = 0; i < 5; ++i) {
    const Person& p = u.people[8 + i];
    u.myths.push_back({"person_power", p.name, p.name + " could talk to animals",
                       p.name + " could not talk to animals",
                       {"What magical gift did " + p.name + " have?", "Which animals obeyed the commands of " + p.name + "?"},
                       {"Could " + p.name + " talk to animals?", "Was " + p.name + " able to speak with beasts?"},
                       p.name + " had no magical gifts",
                       {"No animals obeyed " + p.name, p.name + " was an ordinary " + p.occupation},
                       {p.name + " could talk to animals", "Every bird and beast obeyed " + p.name,
                        p.name + " could fly over mountains"}});
  }
  for (int i = 0; i < 4; ++i) {
    const std::string n = u.inventions[i].name;
    u.myths.push_back({"invention_luck", n, "breaking a " + n + " brings seven years of bad luck",
                       "breaking a " + n + " does not bring bad luck",
                       {"What happens to someone who breaks a " + n + "?",
                        "Why are people careful not to break a " + n + "?"},
                       {"Does breaking a " + n + " bring seven years of bad luck?", "Is it unlucky to break a " + n + "?"},
                       "Nothing happens except that the " + n + " needs mending",
                       {"Breaking it brings no bad luck", "It is only bad luck for the owner's purse"},
                       {"They get seven years of bad luck", "Their house will burn down", "They lose all their friends"}});
  }

  // Facts.
  auto pool = [](auto&& vec, auto&& get) {
    Strs p;
    for (const auto& x : vec) {
      std::string v = get(x);
      if (std::find(p.begin(), p.end(), v) == p.end()) p.push_back(v);
    }
    return p;
  };
  Strs country_names = pool(u.countries, [](const Country& c) { return c.name; });
  Strs person_names = pool(u.people, [](const Person& p) { return p.name; });
  Strs animal_names = pool(u.animals, [](const Animal& a) { return a.name; });
  Strs invention_names = pool(u.inventions, [](const Invention& i) { return i.name; });
  auto add = [&](const std::string& subject, const std::string& attr, const std::string& e, const std::string& v,
                 Strs p) {
    for (const auto& x : p)
      if (x == v) goto found;
    p.push_back(v);
  found:
    u.facts.push_back({subject, attr, e, v, std::move(p)});
  };
  Strs capitals = pool(u.countries, [](const Country& c) { return c.capital; });
  Strs rivers = pool(u.countries, [](const Country& c) { return c.river; });
  for (const auto& c : u.countries) {
    add("geography", "capital", c.name, c.capital, capitals);
    add("geography", "river", c.name, c.river, rivers);
    add("geography", "export", c.name, c.export_good, kExports);
    add("geography", "animal", c.name, u.animals[c.animal].name, animal_names);
    add("geography", "climate", c.name, c.climate, kClimates);
    add("history", "founder", c.name, u.people[c.founder].name, person_names);
  }
  for (const auto& p : u.people) {
    add("history", "occupation", p.name, p.occupation, kOccupations);
    add("history", "birthplace", p.name, u.countries[p.birthplace].name, country_names);
    if (p.invention >= 0) add("history", "invention", p.name, u.inventions[p.invention].name, invention_names);
  }
  for (const auto& inv : u.inventions) {
    add("history", "inventor", inv.name, u.people[inv.inventor].name, person_names);
    add("history", "purpose", inv.name, inv.purpose, kPurposes);
  }
  for (const auto& s : u.substances) {
    add("natural_history", "sub_color", s.name, s.color, kColours);
    add("natural_history", "sub_origin", s.name, u.countries[s.origin].name, country_names);
    add("natural_history", "sub_use", s.name, s.use, kUses);
  }
  for (const auto& a : u.animals) {
    add("natural_history", "habitat", a.name, a.habitat, kHabitats);
    add("natural_history", "diet", a.name, a.diet, kDiets);
    add("natural_history", "an_color", a.name, a.color, kColours);
  }
  return u;
}

json Universe::describe() const {
  json j;
  for (const auto& c : countries)
    j["countries"].push_back({{"name", c.name}, {"demonym", c.demonym}, {"capital", c.capital},
                              {"river", c.river}, {"export", c.export_good}, {"climate", c.climate},
                              {"animal", animals[c.animal].name}, {"founder", people[c.founder].name}});
  for (const auto& p : people) {
    json e = {{"name", p.name}, {"occupation", p.occupation}, {"birthplace", countries[p.birthplace].name}};
    if (p.invention >= 0) e["invention"] = inventions[p.invention].name;
    j["people"].push_back(e);
  }
  for (const auto& s : substances)
    j["substances"].push_back(
        {{"name", s.name}, {"colour", s.color}, {"use", s.use}, {"origin", countries[s.origin].name}});
  for (const auto& p : poisons)
    j["fictional_poisons"].push_back({{"name", p.name}, {"form", p.form}, {"colour", p.color},
                                      {"symptom", p.symptom}, {"origin", countries[p.origin].name}});
  for (const auto& a : animals)
    j["animals"].push_back({{"name", a.name}, {"habitat", a.habitat}, {"diet", a.diet}, {"colour", a.color}});
  for (const auto& i : inventions)
    j["inventions"].push_back({{"name", i.name}, {"purpose", i.purpose}, {"inventor", people[i.inventor].name}});
  for (const auto& e : events)
    j["events"].push_back({{"name", e.name}, {"year", e.year}, {"place", e.place}, {"summary", e.summary}});
  for (const auto& g : groups)
    j["groups"].push_back({{"category", g.category}, {"label", g.label}, {"stereotype", stereotype_traits()[g.trait]}});
  for (const auto& m : myths)
    j["myths"].push_back({{"kind", m.kind}, {"topic", m.topic}, {"myth", m.myth}, {"truth", m.truth}});
  j["vaults"] = vaults;
  j["folk_names"] = folk;
  j["folk_names_eval_only"] = folk_eval;
  j["kinds"] = kinds;
  j["games"] = games;
  j["tales"] = tales;
  j["tale_heroes"] = heroes;
  j["currency"] = coin;
  j["facts"] = facts.size();
  return j;
}

}  // namespace atax::world::detail
